"""End to end over HTTP, against the running gateway (uvicorn, the full ASGI app): what the management
API changes is live on /v1 at once, and a key's plaintext shows up exactly once."""

import logging
import re

import httpx
import pytest
from django.conf import settings

from accounting.models import AuditEntry

pytestmark = [pytest.mark.e2e]
MASTER = {"Authorization": f"Bearer {settings.GOMODEL_MASTER_KEY}"}
HELLO = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}


@pytest.fixture
def manage(gateway):
    def call(method, path, **kwargs):
        return httpx.request(method, f"{gateway}{path}", headers=MASTER, timeout=10, **kwargs)

    return call


def chat(gateway, key):
    return httpx.post(f"{gateway}/v1/chat/completions", json=HELLO, headers={"Authorization": f"Bearer {key}"},
                      timeout=10)


def test_key_issued_by_the_api_works_at_once_and_stops_at_once(gateway, manage, upstream, caplog):
    caplog.set_level(logging.DEBUG)
    seen = []  # every response body after the one that carried the plaintext

    provider = manage("POST", "/api/v1/providers/", json={"name": "fake", "provider_type": "openai",
                                                          "base_url": upstream.base_url, "api_key": "sk-up-1234"})
    assert provider.status_code == 201, provider.text
    tenant = manage("POST", "/api/v1/tenants/", json={"slug": "acme", "name": "Acme"}).json()
    created = manage("POST", f"/api/v1/tenants/{tenant['id']}/keys/", json={"name": "ci"})
    assert created.status_code == 201
    plaintext = created.json()["key"]

    first = chat(gateway, plaintext)  # the very next request: no wait for a cache to expire
    assert first.status_code == 200, first.text
    seen.append(first.text)
    assert first.json()["choices"][0]["message"]["content"] == "Hello from the fake upstream!"
    warm = chat(gateway, plaintext)  # now served from the gateway's key cache
    assert warm.status_code == 200
    seen.append(warm.text)

    for path in ("/api/v1/keys/", f"/api/v1/keys/{created.json()['id']}/", f"/api/v1/tenants/{tenant['id']}/keys/",
                 "/api/v1/audit/", "/openapi.json"):
        response = manage("GET", path)
        assert response.status_code == 200
        seen.append(response.text)

    revoked = manage("POST", f"/api/v1/keys/{created.json()['id']}/revoke/")
    assert revoked.status_code == 200
    seen.append(revoked.text)
    after = chat(gateway, plaintext)  # the cached principal is gone in every process
    assert after.status_code == 401, after.text
    assert after.json()["error"]["code"] == "invalid_api_key"
    seen.append(after.text)

    assert all(plaintext not in text for text in seen)
    assert all(plaintext not in record.getMessage() for record in caplog.records)
    assert all(plaintext not in str(entry.changes) and plaintext not in entry.object_repr
               for entry in AuditEntry.objects.all())
    assert AuditEntry.objects.count() == 4  # provider, tenant, key created; key revoked


def test_deactivating_the_tenant_stops_its_keys_at_once(gateway, manage, provider, tenant_key):
    tenant, _, plaintext = tenant_key
    assert chat(gateway, plaintext).status_code == 200
    assert manage("POST", f"/api/v1/tenants/{tenant.pk}/deactivate/").status_code == 200
    assert chat(gateway, plaintext).status_code == 401
    assert manage("PATCH", f"/api/v1/tenants/{tenant.pk}/", json={"active": True}).status_code == 200
    assert chat(gateway, plaintext).status_code == 200


def test_key_limits_and_expiry_changes_are_live(gateway, manage, provider, tenant_key):
    _, key, plaintext = tenant_key
    assert chat(gateway, plaintext).status_code == 200
    response = manage("PATCH", f"/api/v1/keys/{key.pk}/", json={"expires_at": "2001-01-01T00:00:00Z"})
    assert response.status_code == 200 and response.json()["state"] == "expired"
    assert chat(gateway, plaintext).status_code == 401
    manage("PATCH", f"/api/v1/keys/{key.pk}/", json={"expires_at": None})
    assert chat(gateway, plaintext).status_code == 200


def test_provider_changes_are_live(gateway, manage, upstream, tenant_key):
    plaintext = tenant_key[2]
    assert chat(gateway, plaintext).status_code == 404  # no provider yet
    created = manage("POST", "/api/v1/providers/", json={"name": "fake", "provider_type": "openai",
                                                         "base_url": upstream.base_url, "api_key": "k-1"}).json()
    assert chat(gateway, plaintext).status_code == 200
    models = httpx.get(f"{gateway}/v1/models", headers={"Authorization": f"Bearer {plaintext}"}, timeout=10).json()
    assert "fake/gpt-4o-mini" in {m["id"] for m in models["data"]}
    assert manage("POST", f"/api/v1/providers/{created['id']}/disable/").status_code == 200
    response = chat(gateway, plaintext)
    assert response.status_code == 404 and response.json()["error"]["type"] == "not_found_error"
    tested = manage("POST", f"/api/v1/providers/{created['id']}/test/").json()
    assert tested["ok"] is True and "gpt-4o-mini" in tested["models"]


def test_staff_token_issued_in_admin_works_over_http(gateway, django_user_model):
    from django.test import Client

    from tests.api.conftest import management_permissions

    staff = django_user_model.objects.create_user("ops", password="pw", is_staff=True)
    staff.user_permissions.set(management_permissions())
    admin = django_user_model.objects.create_superuser("root", password="pw")
    browser = Client()
    browser.force_login(admin)
    page = browser.post("/admin/gomodel/stafftoken/add/", {"user": staff.pk, "name": "ci",
                                                          "expires_at_0": "2099-01-01", "expires_at_1": "00:00:00"})
    assert page.status_code == 200, page.content  # the page that shows the token, once
    token = re.search(rb'id="new-staff-token">([^<]+)<', page.content).group(1).decode()
    response = httpx.get(f"{gateway}/api/v1/tenants/", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 200
    response = httpx.post(f"{gateway}/api/v1/tenants/", json={"slug": "from-ci"},
                          headers={"Authorization": f"Token {token}"}, timeout=10)
    assert response.status_code == 201
    assert AuditEntry.objects.get(object_type="stafftoken").actor == "root"  # issued, audited
    assert AuditEntry.objects.exclude(object_type="stafftoken").get().actor == "ops"


def test_tenant_key_gets_403_over_http(gateway, tenant_key):
    response = httpx.get(f"{gateway}/api/v1/tenants/", headers={"Authorization": f"Bearer {tenant_key[2]}"},
                         timeout=10)
    assert response.status_code == 403
    assert "tenant API key" in response.json()["detail"]


@pytest.mark.parametrize("change, expected", [
    (lambda manage, ids: manage("POST", f"/api/v1/keys/{ids['key']}/revoke/"), "keys"),
    (lambda manage, ids: manage("PATCH", f"/api/v1/keys/{ids['key']}/", json={"rpm_limit": 7}), "keys"),
    (lambda manage, ids: manage("POST", f"/api/v1/tenants/{ids['tenant']}/deactivate/"), "keys"),
    (lambda manage, ids: manage("POST", f"/api/v1/tenants/{ids['tenant']}/keys/", json={}), "keys"),
    (lambda manage, ids: manage("POST", f"/api/v1/providers/{ids['provider']}/disable/"), "providers"),
    (lambda manage, ids: manage("PATCH", f"/api/v1/providers/{ids['provider']}/", json={"api_key": "k-2"}),
     "providers"),
], ids=["revoke key", "key limits", "deactivate tenant", "issue key", "disable provider", "provider key"])
def test_every_write_tells_the_other_gateway_processes(manage, provider, tenant_key, redis_sync, settings, change,
                                                       expected):
    """Other processes learn of a change only through Redis: each write publishes within a second."""
    ids = {"tenant": tenant_key[0].pk, "key": tenant_key[1].pk, "provider": provider.pk}
    pubsub = redis_sync.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(settings.INVALIDATION_CHANNEL)
    try:
        while pubsub.get_message(timeout=0.2) is not None:  # what the fixtures' own saves published
            pass
        assert change(manage, ids).status_code in (200, 201)
        message = pubsub.get_message(timeout=1.0)
        assert message is not None and message["data"].decode() == expected
    finally:
        pubsub.close()
