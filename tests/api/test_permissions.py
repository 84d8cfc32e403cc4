"""#12 item 9: staff tokens get Django model permissions in the management API; env-defined providers are
read-only there (as in the admin); a new base_url needs the provider's key in the same request, so POST
…/test never sends a stored key to a host it was not stored for. Also #9: tenants by slug."""

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from accounting.models import ApiKey, AuditEntry
from providers.models import ProviderConfig
from tests.fake_upstream import FakeUpstream

GROQ_KEY = "gsk-env-secret-0123456789"
ADMIN_KEY = "sk-admin-secret-0123456789"


@pytest.fixture
def attacker_host():
    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def env_groq(db, upstream):
    config = ProviderConfig(name="groq", provider_type="groq", base_url=upstream.base_url,
                            source=ProviderConfig.SOURCE_ENV)
    config.set_api_key(GROQ_KEY)
    config.save()
    return config


@pytest.fixture
def admin_provider(db, upstream):
    config = ProviderConfig(name="mine", provider_type="openai", base_url=upstream.base_url)
    config.set_api_key(ADMIN_KEY)
    config.save()
    return config


def grant(client, *codenames):
    client.user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client.user = type(client.user).objects.get(pk=client.user.pk)  # drop the permission cache


def test_the_reported_attack_staff_without_permissions(bare_staff_api, env_groq, attacker_host, upstream):
    """A staff user with no model permissions PATCHed groq's base_url, then POST …/test sent the groq key
    to the new host."""
    before = AuditEntry.objects.count()
    response = bare_staff_api.patch(f"/api/v1/providers/{env_groq.pk}/", {"base_url": attacker_host.base_url},
                                    format="json")
    assert response.status_code == 403
    env_groq.refresh_from_db()
    assert env_groq.base_url == upstream.base_url
    assert bare_staff_api.post(f"/api/v1/providers/{env_groq.pk}/test/").status_code == 403
    assert bare_staff_api.get("/api/v1/providers/").status_code == 403
    assert bare_staff_api.post("/api/v1/tenants/", {"slug": "x"}, format="json").status_code == 403
    assert attacker_host.requests == []
    assert AuditEntry.objects.count() == before


def test_env_providers_are_read_only_even_with_the_change_permission(bare_staff_api, env_groq, attacker_host):
    grant(bare_staff_api, "view_providerconfig", "change_providerconfig")
    for payload in ({"base_url": attacker_host.base_url}, {"base_url": attacker_host.base_url, "api_key": "k" * 20},
                    {"enabled": False}):
        response = bare_staff_api.patch(f"/api/v1/providers/{env_groq.pk}/", payload, format="json")
        assert response.status_code == 403, payload
        assert "environment" in response.json()["detail"]
    assert bare_staff_api.post(f"/api/v1/providers/{env_groq.pk}/disable/").status_code == 403
    env_groq.refresh_from_db()
    assert env_groq.enabled and env_groq.api_key == GROQ_KEY
    assert bare_staff_api.get(f"/api/v1/providers/{env_groq.pk}/").status_code == 200  # view is fine


def test_a_new_base_url_without_the_key_is_refused_and_test_never_leaks_it(bare_staff_api, admin_provider,
                                                                            attacker_host, upstream):
    grant(bare_staff_api, "view_providerconfig", "change_providerconfig")
    url = f"/api/v1/providers/{admin_provider.pk}/"
    response = bare_staff_api.patch(url, {"base_url": attacker_host.base_url}, format="json")
    assert response.status_code == 400
    assert "api_key" in response.json()
    admin_provider.refresh_from_db()
    assert admin_provider.base_url == upstream.base_url

    upstream.requests.clear()
    assert bare_staff_api.post(f"{url}test/").json()["ok"] is True
    assert upstream.requests[-1]["headers"]["authorization"] == f"Bearer {ADMIN_KEY}"
    assert attacker_host.requests == []  # the stored key never went to the other host

    # With a key in the same request the move is allowed: the new host only ever sees that new key.
    response = bare_staff_api.patch(url, {"base_url": attacker_host.base_url, "api_key": "sk-their-own-key-1"},
                                    format="json")
    assert response.status_code == 200, response.content
    bare_staff_api.post(f"{url}test/")
    seen = {r["headers"].get("authorization") for r in attacker_host.requests}
    assert seen == {"Bearer sk-their-own-key-1"}
    assert AuditEntry.objects.filter(object_type="providerconfig", actor="intern", action="update").count() == 1


def test_view_permission_reads_but_does_not_write(bare_staff_api, admin_provider, make_tenant):
    tenant = make_tenant("acme")
    grant(bare_staff_api, "view_tenant", "view_providerconfig", "view_apikey")
    assert bare_staff_api.get("/api/v1/tenants/").status_code == 200
    assert bare_staff_api.get(f"/api/v1/tenants/{tenant.pk}/keys/").status_code == 200
    assert bare_staff_api.post(f"/api/v1/tenants/{tenant.pk}/deactivate/").status_code == 403
    assert bare_staff_api.post(f"/api/v1/tenants/{tenant.pk}/keys/", {"name": "x"}, format="json").status_code == 403
    assert bare_staff_api.post(f"/api/v1/providers/{admin_provider.pk}/test/").status_code == 403  # needs change
    assert bare_staff_api.post(f"/api/v1/providers/{admin_provider.pk}/disable/").status_code == 403
    response = bare_staff_api.patch(f"/api/v1/tenants/{tenant.pk}/", {"name": "x"}, format="json")
    assert response.status_code == 403 and "accounting.change_tenant" in response.json()["detail"]
    grant(bare_staff_api, "view_tenant", "add_apikey")
    assert bare_staff_api.post(f"/api/v1/tenants/{tenant.pk}/keys/", {"name": "x"}, format="json").status_code == 201


def test_the_master_key_keeps_full_access(master_api, admin_provider, attacker_host):
    response = master_api.patch(f"/api/v1/providers/{admin_provider.pk}/", {"enabled": False}, format="json")
    assert response.status_code == 200
    response = master_api.patch(f"/api/v1/providers/{admin_provider.pk}/", {"base_url": attacker_host.base_url},
                                format="json")
    assert response.status_code == 400  # the key rule holds for everyone


def test_tenants_by_slug(master_api, make_tenant):
    tenant = make_tenant("ci-team", "CI")
    assert master_api.get("/api/v1/tenants/ci-team/").json()["id"] == tenant.pk
    assert master_api.get(f"/api/v1/tenants/{tenant.pk}/").json()["slug"] == "ci-team"
    response = master_api.post("/api/v1/tenants/ci-team/keys/", {"name": "deploy"}, format="json")
    assert response.status_code == 201 and response.json()["tenant"] == tenant.pk
    response = master_api.post("/api/v1/keys/", {"tenant": "ci-team", "name": "by-slug"}, format="json")
    assert response.status_code == 201 and response.json()["tenant"] == tenant.pk
    assert master_api.get("/api/v1/keys/", {"tenant": "ci-team"}).json()["count"] == 2
    assert master_api.get("/api/v1/keys/", {"tenant": str(tenant.pk)}).json()["count"] == 2
    assert master_api.patch("/api/v1/tenants/ci-team/", {"name": "CI 2"}, format="json").json()["name"] == "CI 2"
    assert master_api.get("/api/v1/tenants/nobody/").status_code == 404
    response = master_api.post("/api/v1/keys/", {"tenant": "nobody"}, format="json")
    assert response.status_code == 400 and "tenant" in response.json()
    assert ApiKey.objects.filter(tenant=tenant).count() == 2


def test_a_plain_token_without_staff_is_refused(db, plain_user_token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plain_user_token}")
    assert client.get("/api/v1/tenants/").status_code == 403


def test_a_new_type_that_moves_the_default_host_needs_the_key_too(master_api, db):
    config = ProviderConfig(name="plain", provider_type="openai", base_url="")  # follows the catalogue default
    config.set_api_key(ADMIN_KEY)
    config.save()
    response = master_api.patch(f"/api/v1/providers/{config.pk}/", {"provider_type": "groq"}, format="json")
    assert response.status_code == 400 and "api_key" in response.json()
    response = master_api.patch(f"/api/v1/providers/{config.pk}/", {"provider_type": "groq", "api_key": "gsk-1234"},
                                format="json")
    assert response.status_code == 200
    response = master_api.patch(f"/api/v1/providers/{config.pk}/", {"model_list": "a,b"}, format="json")
    assert response.status_code == 200  # nothing that moves the key: no key needed
