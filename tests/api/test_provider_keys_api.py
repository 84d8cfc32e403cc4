"""A provider config's further keys through the management API: write-only (never returned, not even redacted),
listed by label, audited; a new base URL needs them again."""

from accounting.models import AuditEntry
from providers.models import ProviderConfig

SECRETS = ["sk-first-key-abcd", "sk-second-key-efgh", "sk-third-key-ijkl"]


def test_extra_keys_are_write_only_and_listed_by_label(api, upstream):
    response = api.post("/api/v1/providers/", {
        "name": "pooled", "provider_type": "openai", "base_url": upstream.base_url, "api_key": SECRETS[0],
        "extra_api_keys": [{"api_key": SECRETS[1]}, {"api_key": SECRETS[2], "label": "backup"}]}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert "extra_api_keys" not in body
    assert [(k["label"], k["rejected_at"]) for k in body["api_keys"]] == [("key-1", None), ("key-2", None),
                                                                          ("backup", None)]
    config = ProviderConfig.objects.get(pk=body["id"])
    assert {k.label: k.api_key for k in config.extra_keys.all()} == {"key-2": SECRETS[1], "backup": SECRETS[2]}
    for url in ("/api/v1/providers/", f"/api/v1/providers/{body['id']}/"):
        content = api.get(url).content.decode()
        assert not any(secret in content or secret[-4:] in content for secret in SECRETS[1:])
    assert not any(s in str(e.changes) for e in AuditEntry.objects.all() for s in SECRETS)
    assert AuditEntry.objects.filter(object_type="providerkey", action="create").count() == 2

    # Omitted: kept. Sent: exactly these. A new base URL without them again: refused.
    api.patch(f"/api/v1/providers/{body['id']}/", {"model_list": "x"}, format="json")
    assert config.extra_keys.count() == 2
    response = api.patch(f"/api/v1/providers/{body['id']}/", {"extra_api_keys": [{"api_key": "sk-new-abcdefgh",
                                                                                  "label": "backup"}]}, format="json")
    assert [k["label"] for k in response.json()["api_keys"]] == ["key-1", "backup"]
    response = api.patch(f"/api/v1/providers/{body['id']}/", {"base_url": "https://elsewhere.example/v1",
                                                              "api_key": SECRETS[0]}, format="json")
    assert response.status_code == 400 and "extra_api_keys" in str(response.json())
    response = api.patch(f"/api/v1/providers/{body['id']}/", {"base_url": "https://elsewhere.example/v1",
                                                              "api_key": SECRETS[0], "extra_api_keys": []},
                         format="json")
    assert response.status_code == 200 and [k["label"] for k in response.json()["api_keys"]] == ["key-1"]
