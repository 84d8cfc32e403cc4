"""#12 item 10: every admin action needs the change permission (test-connection too), and every admin write
leaves an audit row, written by the domain service in the same transaction, naming the staff user."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from accounting.models import ApiKey, AuditEntry, Tenant
from accounting.tenants.services import do_create_api_key, do_create_tenant, do_revoke_api_key
from providers.models import ProviderConfig

KEYS = "/admin/accounting/apikey/"
PROVIDERS = "/admin/providers/providerconfig/"
TENANTS = "/admin/accounting/tenant/"


def staff_client(django_user_model, username, *codenames) -> Client:
    user = django_user_model.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def revoked_key(db):
    tenant = do_create_tenant("acme")
    key, _ = do_create_api_key(tenant, name="old")
    return do_revoke_api_key(key)


@pytest.fixture
def provider(db, upstream):
    config = ProviderConfig(name="mine", provider_type="openai", base_url=upstream.base_url)
    config.set_api_key("sk-stored-0123456789")
    config.save()
    return config


def test_a_view_only_user_cannot_run_actions(django_user_model, revoked_key, provider, upstream):
    viewer = staff_client(django_user_model, "viewer", "view_apikey", "view_providerconfig", "view_tenant")
    before = AuditEntry.objects.count()
    page = viewer.get(KEYS)
    assert page.status_code == 200 and page.context_data["action_form"] is None  # no action offered
    viewer.post(KEYS, {"action": "reactivate", "_selected_action": [revoked_key.pk]})
    assert ApiKey.objects.get(pk=revoked_key.pk).active is False

    viewer.post(PROVIDERS, {"action": "disable", "_selected_action": [provider.pk]})
    assert ProviderConfig.objects.get(pk=provider.pk).enabled is True
    upstream.requests.clear()
    viewer.post(PROVIDERS, {"action": "test_connection_action", "_selected_action": [provider.pk]})
    assert viewer.post(f"{PROVIDERS}{provider.pk}/test-connection/").status_code == 403
    assert upstream.requests == []  # the stored key was not sent anywhere
    assert AuditEntry.objects.count() == before


def test_actions_with_the_change_permission_are_audited(django_user_model, revoked_key, provider, upstream):
    operator = staff_client(django_user_model, "operator", "view_apikey", "change_apikey", "view_providerconfig",
                            "change_providerconfig")
    operator.post(KEYS, {"action": "reactivate", "_selected_action": [revoked_key.pk]})
    assert ApiKey.objects.get(pk=revoked_key.pk).active is True
    operator.post(PROVIDERS, {"action": "disable", "_selected_action": [provider.pk]})
    assert ProviderConfig.objects.get(pk=provider.pk).enabled is False
    assert operator.post(f"{PROVIDERS}{provider.pk}/test-connection/").status_code == 200
    rows = list(AuditEntry.objects.filter(actor="operator").order_by("id").values_list("object_type", "action"))
    assert rows == [("apikey", "reactivate"), ("providerconfig", "disable")]  # a test is not a write


def test_admin_form_saves_are_audited_without_secrets(django_user_model, db):
    root = django_user_model.objects.create_superuser("root", password="pw")
    client = Client()
    client.force_login(root)
    response = client.post(f"{TENANTS}add/", {"slug": "beta", "name": "Beta", "active": "on",
                                              "api_keys-TOTAL_FORMS": "0", "api_keys-INITIAL_FORMS": "0"})
    assert response.status_code == 302, response.content.decode()[:1500]
    tenant = Tenant.objects.get(slug="beta")
    response = client.post(f"{PROVIDERS}add/", {"name": "p1", "provider_type": "openai", "base_url": "",
                                                "api_key": "sk-form-secret-123456", "model_list": "",
                                                "enabled": "on"})
    assert response.status_code == 302, response.content.decode()[:1500]
    config = ProviderConfig.objects.get(name="p1")
    rows = {(e.object_type, e.object_id): e for e in AuditEntry.objects.filter(actor="root")}
    assert rows[("tenant", str(tenant.pk))].action == "create"
    provider_row = rows[("providerconfig", str(config.pk))]
    assert provider_row.action == "create" and provider_row.changes["api_key_set"] is True
    assert "sk-form-secret" not in str(provider_row.changes)
    assert config.api_key == "sk-form-secret-123456"
