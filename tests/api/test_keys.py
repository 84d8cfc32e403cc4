"""Tenants' API keys through the management API: issued with the plaintext shown once, listed per
tenant (never with a secret), limits updated, revoked."""

import datetime

import pytest
from django.utils import timezone

from accounting.models import ApiKey, AuditEntry
from accounting.tenants.keys import hash_key

KEY_FIELDS = {"id", "tenant", "tenant_slug", "name", "prefix", "state", "active", "expires_at", "last_used_at",
              "rpm_limit", "tpm_limit", "concurrency_limit", "allowed_models", "budget_usd", "budget_period",
              "budget_soft_percent", "budget_spent_usd", "cache_mode", "cache_ttl_seconds", "cache_max_entry_bytes",
              "cache_sampled", "labels", "cache_similarity", "created_at"}


def test_issue_list_update_revoke(api, make_tenant):
    tenant = make_tenant("acme")
    response = api.post(f"/api/v1/tenants/{tenant.pk}/keys/", {"name": "ci", "rpm_limit": 60}, format="json")
    assert response.status_code == 201, response.content
    created = response.json()
    plaintext = created["key"]
    assert set(created) == KEY_FIELDS | {"key"}
    assert plaintext.startswith("sk_gom_") and created["prefix"].endswith(plaintext[-4:])
    assert created["state"] == "active" and created["rpm_limit"] == 60 and created["tenant_slug"] == "acme"
    assert response["Cache-Control"] == "no-store"
    key = ApiKey.objects.get(pk=created["id"])
    assert key.key_hash == hash_key(plaintext)

    # the flat endpoint issues too, naming the tenant in the body
    response = api.post("/api/v1/keys/", {"tenant": tenant.pk, "name": "deploy", "tpm_limit": 1000,
                                          "expires_at": "2999-01-01T00:00:00Z"}, format="json")
    assert response.status_code == 201, response.content
    second = response.json()
    assert second["tpm_limit"] == 1000 and second["expires_at"].startswith("2999-01-01")

    listing = api.get(f"/api/v1/tenants/{tenant.pk}/keys/").json()
    assert listing["count"] == 2 and {k["name"] for k in listing["results"]} == {"ci", "deploy"}
    assert all(set(k) == KEY_FIELDS for k in listing["results"])
    assert api.get("/api/v1/keys/", {"tenant": tenant.pk}).json()["count"] == 2
    assert api.get("/api/v1/keys/", {"tenant_slug": "acme"}).json()["count"] == 2
    assert api.get("/api/v1/keys/", {"tenant": tenant.pk + 1}).json()["count"] == 0

    response = api.patch(f"/api/v1/keys/{created['id']}/", {"rpm_limit": 120, "tpm_limit": None, "name": "ci-2"},
                         format="json")
    assert response.status_code == 200
    assert (response.json()["rpm_limit"], response.json()["name"]) == (120, "ci-2")
    response = api.put(f"/api/v1/keys/{created['id']}/", {"name": "ci-3", "rpm_limit": 5}, format="json")
    assert response.status_code == 200 and response.json()["rpm_limit"] == 5

    response = api.post(f"/api/v1/keys/{created['id']}/revoke/")
    assert response.status_code == 200
    assert (response.json()["active"], response.json()["state"]) == (False, "revoked")
    assert api.delete(f"/api/v1/keys/{second['id']}/").status_code == 405  # revoke, never delete
    response = api.post(f"/api/v1/keys/{second['id']}/revoke/")
    assert response.status_code == 200 and response.json()["state"] == "revoked"
    response = api.post(f"/api/v1/keys/{second['id']}/revoke/")  # revoking twice is harmless, not audited
    assert response.status_code == 200 and response.json()["state"] == "revoked"
    assert ApiKey.objects.filter(active=False).count() == 2  # revoked, not deleted
    assert api.get("/api/v1/keys/", {"active": "false"}).json()["count"] == 2

    actions = list(AuditEntry.objects.filter(object_type="apikey").order_by("id").values_list("action", "actor"))
    assert actions == [("create", api.actor), ("create", api.actor), ("update", api.actor), ("update", api.actor),
                       ("revoke", api.actor), ("revoke", api.actor)]


def test_the_plaintext_is_never_shown_again(api, make_tenant):
    tenant = make_tenant("acme")
    created = api.post(f"/api/v1/tenants/{tenant.pk}/keys/", {"name": "ci"}, format="json").json()
    plaintext, key_id = created["key"], created["id"]
    key_hash = hash_key(plaintext)
    later = [
        api.get("/api/v1/keys/"),
        api.get(f"/api/v1/keys/{key_id}/"),
        api.get(f"/api/v1/tenants/{tenant.pk}/keys/"),
        api.patch(f"/api/v1/keys/{key_id}/", {"name": "x"}, format="json"),
        api.post(f"/api/v1/keys/{key_id}/revoke/"),
        api.get("/api/v1/audit/"),
        api.get(f"/api/v1/tenants/{tenant.pk}/"),
    ]
    for response in later:
        assert response.status_code == 200
        assert plaintext.encode() not in response.content and key_hash.encode() not in response.content
        assert plaintext[7:].encode() not in response.content  # not even without its prefix
    for entry in AuditEntry.objects.all():
        assert plaintext not in str(entry.changes) and key_hash not in str(entry.changes)


def test_states(api, make_tenant):
    tenant = make_tenant("acme")
    key = api.post(f"/api/v1/tenants/{tenant.pk}/keys/", {}, format="json").json()
    ApiKey.objects.filter(pk=key["id"]).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    assert api.get(f"/api/v1/keys/{key['id']}/").json()["state"] == "expired"
    ApiKey.objects.filter(pk=key["id"]).update(expires_at=None)
    api.post(f"/api/v1/tenants/{tenant.pk}/deactivate/")
    assert api.get(f"/api/v1/keys/{key['id']}/").json()["state"] == "tenant_inactive"


@pytest.mark.parametrize("payload, field", [
    ({"rpm_limit": 0}, "rpm_limit"),
    ({"rpm_limit": -1}, "rpm_limit"),
    ({"tpm_limit": 2**31}, "tpm_limit"),
    ({"rpm_limit": "many"}, "rpm_limit"),
    ({"concurrency_limit": 0}, "concurrency_limit"),
    ({"allowed_models": "openai/*"}, "allowed_models"),
    ({"allowed_models": ["openai/gpt*"]}, "allowed_models"),
    ({"allowed_models": ["*"]}, "allowed_models"),
    ({"allowed_models": ["open ai/x"]}, "allowed_models"),
    ({"allowed_models": [""]}, "allowed_models"),
    ({"allowed_models": [42]}, "allowed_models"),
    ({"expires_at": "2000-01-01T00:00:00Z"}, "expires_at"),
    ({"expires_at": "soon"}, "expires_at"),
    ({"name": "n" * 201}, "name"),
])
def test_key_validation(api, make_tenant, payload, field):
    tenant = make_tenant("acme")
    response = api.post(f"/api/v1/tenants/{tenant.pk}/keys/", payload, format="json")
    assert response.status_code == 400 and field in response.json(), response.content
    response = api.post("/api/v1/keys/", {"tenant": tenant.pk, **payload}, format="json")
    assert response.status_code == 400 and field in response.json(), response.content
    assert not ApiKey.objects.exists()


def test_tenant_must_exist_and_be_active(api, make_tenant):
    response = api.post("/api/v1/keys/", {"name": "x"}, format="json")
    assert response.status_code == 400 and "tenant" in response.json()
    response = api.post("/api/v1/keys/", {"tenant": 424242}, format="json")
    assert response.status_code == 400 and "tenant" in response.json()
    tenant = make_tenant("gone")
    api.post(f"/api/v1/tenants/{tenant.pk}/deactivate/")
    for response in (api.post("/api/v1/keys/", {"tenant": tenant.pk}, format="json"),
                     api.post(f"/api/v1/tenants/{tenant.pk}/keys/", {}, format="json")):
        assert response.status_code == 400 and "tenant" in response.json()
    assert api.post("/api/v1/tenants/4242/keys/", {}, format="json").status_code == 404


def test_a_key_cannot_move_to_another_tenant(api, make_tenant):
    first, second = make_tenant("one"), make_tenant("two")
    key = api.post(f"/api/v1/tenants/{first.pk}/keys/", {}, format="json").json()
    response = api.patch(f"/api/v1/keys/{key['id']}/", {"tenant": second.pk}, format="json")
    assert response.status_code == 200 and response.json()["tenant"] == first.pk
