"""A provider config's quotas in the admin: set through the audited domain service, checked (a bad model quota is a
form error), and shown with their current use read from the shared Redis counters."""

import pytest

from accounting.models import AuditEntry
from providers.models import ProviderConfig

PROVIDERS = "/admin/providers/providerconfig/"


@pytest.fixture
def config(db):
    config = ProviderConfig(name="my-openai", provider_type="openai")
    config.set_api_key("sk-live-first-key-abcdefgh1234")
    config.save()
    return config


def form(**quotas):
    return {"name": "my-openai", "provider_type": "openai", "base_url": "", "api_key": "", "model_list": "",
            "enabled": "on", "rpm_limit": "", "tpm_limit": "", "concurrency_limit": "", "model_quotas": "{}",
            **quotas}


def test_quotas_are_saved_audited_and_shown_with_their_use(admin_client, config, settings, redis_sync):
    response = admin_client.post(f"{PROVIDERS}{config.pk}/change/", form(
        rpm_limit="100", concurrency_limit="4", model_quotas='{"gpt-4o": {"tpm": 30000}}'))
    assert response.status_code == 302, response.content.decode()[:3000]
    config.refresh_from_db()
    assert (config.rpm_limit, config.concurrency_limit, config.model_quotas) == (100, 4, {"gpt-4o": {"tpm": 30000}})
    entry = AuditEntry.objects.get(object_type="providerconfig", action="update")
    assert {"rpm_limit", "concurrency_limit", "model_quotas"} <= set(entry.changes)
    redis_sync.set(f"{settings.LIMITS_PREFIX}:{{p{config.pk}}}:p:rq", "0")  # idle: nothing used
    page = admin_client.get(f"{PROVIDERS}{config.pk}/change/").content.decode()
    assert "Quota use now" in page
    assert "provider: RPM 0/100, in flight 0/4" in page and "gpt-4o: TPM 0/30000" in page
    assert "RPM 100, in flight 4, 1 model" in admin_client.get(PROVIDERS).content.decode()


def test_a_bad_model_quota_is_a_form_error(admin_client, config):
    response = admin_client.post(f"{PROVIDERS}{config.pk}/change/", form(model_quotas='{"gpt-4o": {"rpm": 0}}'))
    assert response.status_code == 200 and "must be a whole number" in response.content.decode()
    config.refresh_from_db()
    assert config.model_quotas == {}


def test_no_quota_no_redis(admin_client, config):
    assert "no quota" in admin_client.get(f"{PROVIDERS}{config.pk}/change/").content.decode()


def test_a_zero_quota_is_a_form_error(admin_client, config):
    response = admin_client.post(f"{PROVIDERS}{config.pk}/change/", form(rpm_limit="0"))
    assert response.status_code == 200
    config.refresh_from_db()
    assert config.rpm_limit is None
