"""Rate limits and model allow-lists of tenants and keys through the management API and its schema."""

import pytest

from accounting.models import ApiKey, AuditEntry


def test_tenant_limits_and_allow_list_are_set_cleaned_and_audited(api, make_tenant):
    tenant = make_tenant("acme")
    response = api.patch(f"/api/v1/tenants/{tenant.pk}/", {
        "rpm_limit": 600, "tpm_limit": 100_000, "concurrency_limit": 8,
        "allowed_models": [" openai/* ", "anthropic/claude-sonnet-4", "openai/*", "smart"]}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["rpm_limit"], body["tpm_limit"], body["concurrency_limit"]) == (600, 100_000, 8)
    assert body["allowed_models"] == ["openai/*", "anthropic/claude-sonnet-4", "smart"]  # stripped, deduplicated
    tenant.refresh_from_db()
    assert tenant.allowed_models == ["openai/*", "anthropic/claude-sonnet-4", "smart"]
    entry = AuditEntry.objects.filter(object_type="tenant", action="update").latest("id")
    assert entry.changes["concurrency_limit"] == [None, 8]
    cleared = api.patch(f"/api/v1/tenants/{tenant.pk}/", {"rpm_limit": None, "allowed_models": []}, format="json")
    assert cleared.json()["rpm_limit"] is None and cleared.json()["allowed_models"] == []


@pytest.mark.parametrize("payload, field", [
    ({"rpm_limit": 0}, "rpm_limit"),
    ({"tpm_limit": -5}, "tpm_limit"),
    ({"concurrency_limit": 2**31}, "concurrency_limit"),
    ({"allowed_models": ["openai/*", "bad entry"]}, "allowed_models"),
    ({"allowed_models": ["/gpt-4o"]}, "allowed_models"),
    ({"allowed_models": ["openai/"]}, "allowed_models"),
    ({"allowed_models": ["m"] * 501}, "allowed_models"),
])
def test_tenant_validation(api, make_tenant, payload, field):
    tenant = make_tenant("acme")
    response = api.patch(f"/api/v1/tenants/{tenant.pk}/", payload, format="json")
    assert response.status_code == 400 and field in response.json(), response.content
    tenant.refresh_from_db()
    assert (tenant.rpm_limit, tenant.tpm_limit, tenant.concurrency_limit, tenant.allowed_models) == (
        None, None, None, [])


def test_key_issued_with_limits_and_allow_list(api, make_tenant):
    tenant = make_tenant("acme")
    response = api.post(f"/api/v1/tenants/{tenant.pk}/keys/", {
        "concurrency_limit": 3, "allowed_models": ["anthropic/*"]}, format="json")
    assert response.status_code == 201, response.content
    key = ApiKey.objects.get(pk=response.json()["id"])
    assert (key.concurrency_limit, key.allowed_models) == (3, ["anthropic/*"])
    response = api.patch(f"/api/v1/keys/{key.pk}/", {"allowed_models": ["openai/gpt-4o-mini"]}, format="json")
    assert response.json()["allowed_models"] == ["openai/gpt-4o-mini"]


def test_schema_documents_the_fields(api):
    schema = api.get("/openapi.json").json() if api.get("/openapi.json").status_code == 200 else None
    assert schema is not None
    components = schema["components"]["schemas"]
    for name in ("ApiKey", "Tenant"):
        props = components[name]["properties"]
        assert props["concurrency_limit"]["minimum"] == 1 and props["concurrency_limit"]["nullable"] is True
        assert props["allowed_models"]["type"] == "array" and props["allowed_models"]["maxItems"] == 500
    usage = components["core.UsageReport"]
    assert "rate_limits" in usage["properties"]
    chat = schema["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert "permission_error" in chat["403"]["description"] and "model_not_allowed" in chat["403"]["description"]
    assert "x-ratelimit-remaining-tokens" in chat["200"]["headers"] and "retry-after-ms" in chat["429"]["headers"]
