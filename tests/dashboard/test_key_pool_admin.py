"""A provider config's further keys in the admin: write-only, encrypted, audited through the domain services; a
key the upstream rejected is marked on the key, the config's page and the config list, and can be reinstated."""

import pytest

from accounting.models import AuditEntry
from accounting.provider_configs import services
from providers.models import ProviderConfig, ProviderKey

KEYS = "/admin/providers/providerkey/"
PROVIDERS = "/admin/providers/providerconfig/"
SECRET = "sk-live-second-key-abcdefgh9876"


@pytest.fixture
def config(db):
    config = ProviderConfig(name="my-openai", provider_type="openai")
    config.set_api_key("sk-live-first-key-abcdefgh1234")
    config.save()
    return config


def test_a_further_key_is_write_only_encrypted_and_audited(admin_client, config):
    response = admin_client.post(f"{KEYS}add/", {"config": config.pk, "label": "", "api_key": SECRET})
    assert response.status_code == 302, response.content.decode()[:2000]
    key = ProviderKey.objects.get()
    assert (key.label, key.api_key, key.source) == ("key-2", SECRET, "admin")
    assert SECRET not in key.api_key_encrypted
    entry = AuditEntry.objects.get(object_type="providerkey", action="create")
    assert entry.actor == "admin" and SECRET not in str(entry.changes)
    for page in (admin_client.get(KEYS), admin_client.get(f"{KEYS}{key.pk}/change/"),
                 admin_client.get(f"{PROVIDERS}{config.pk}/change/"), admin_client.get(PROVIDERS)):
        html = page.content.decode()
        assert page.status_code == 200 and SECRET not in html
    assert "…9876" in admin_client.get(KEYS).content.decode()
    assert "2 keys" in admin_client.get(PROVIDERS).content.decode()


def test_a_rejected_key_is_flagged_and_can_be_reinstated(admin_client, config):
    key = services.do_add_provider_key("ops", config, SECRET, "backup")
    services.do_reject_provider_key(config.pk, "backup", 401)
    assert "rejected: backup" in admin_client.get(PROVIDERS).content.decode()
    assert "rejected: backup" in admin_client.get(f"{PROVIDERS}{config.pk}/change/").content.decode()
    assert "rejected 2" in admin_client.get(KEYS).content.decode()
    response = admin_client.post(f"{KEYS}{key.pk}/change/", {"label": "backup", "api_key": "", "reinstate": "on"})
    assert response.status_code == 302, response.content.decode()[:2000]
    key.refresh_from_db()
    assert key.rejected_at is None and key.api_key == SECRET
    assert "rejected: backup" not in admin_client.get(PROVIDERS).content.decode()
    assert AuditEntry.objects.filter(object_type="providerkey", action="update").exists()


def test_env_keys_are_read_only(admin_client, db):
    [config] = services.do_sync_env_providers({"GROQ_API_KEY": "gsk-one", "GROQ_API_KEY_2": "gsk-two-abcdefgh"})
    key = config.extra_keys.get()
    page = admin_client.get(f"{KEYS}{key.pk}/change/").content.decode()
    assert 'name="api_key"' not in page and "gsk-two" not in page
    assert admin_client.post(f"{KEYS}add/", {"config": config.pk, "api_key": "gsk-3"}).status_code == 200  # refused
    assert config.extra_keys.count() == 1
