"""The environment's <P>_API_KEY / <P>_BASE_URL / <P>_MODELS (read by providers.env_sync) become ProviderConfig
rows through the audited domain service (accounting.provider_configs.services.do_sync_env_providers; real
database; the environment is a plain dict)."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from accounting.provider_configs.services import do_sync_env_providers
from providers import crypto
from providers.env_sync import env_providers
from providers.models import ProviderConfig

pytestmark = [pytest.mark.django_db]


def rows() -> dict[str, ProviderConfig]:
    return {c.name: c for c in ProviderConfig.objects.all()}


def test_keys_enable_providers_with_their_catalogue_defaults():
    synced = do_sync_env_providers({"OPENAI_API_KEY": "sk-openai-1", "GROQ_API_KEY": " gsk-2 ",
                                 "GROQ_MODELS": "llama-3.3-70b-versatile, qwen-qwq", "UNRELATED": "x"})
    assert [c.name for c in synced] == ["openai", "groq"]
    configs = rows()
    assert set(configs) == {"openai", "groq"}
    openai, groq = configs["openai"], configs["groq"]
    assert (openai.provider_type, openai.enabled, openai.source) == ("openai", True, "env")
    assert openai.base_url == "" and openai.effective_base_url == "https://api.openai.com/v1"
    assert openai.api_key == "sk-openai-1"
    assert groq.api_key == "gsk-2"  # trimmed
    assert groq.extra_models == ["llama-3.3-70b-versatile", "qwen-qwq"]
    assert groq.effective_base_url == "https://api.groq.com/openai/v1"


def test_the_key_is_stored_encrypted():
    do_sync_env_providers({"XAI_API_KEY": "xai-secret-key-123"})
    config = ProviderConfig.objects.get(name="xai")
    assert config.api_key_encrypted
    assert config.api_key_encrypted != "xai-secret-key-123"
    assert "xai-secret-key-123" not in config.api_key_encrypted
    assert crypto.decrypt(config.api_key_encrypted) == "xai-secret-key-123"
    assert config.api_key == "xai-secret-key-123"
    assert config.api_key_redacted == "…-123"


def test_no_variables_no_providers():
    assert do_sync_env_providers({}) == []
    assert not ProviderConfig.objects.exists()


def test_an_empty_key_does_not_enable_a_provider():
    assert do_sync_env_providers({"OPENAI_API_KEY": "   ", "ANTHROPIC_API_KEY": ""}) == []


def test_ollama_is_enabled_by_its_base_url_alone():
    synced = do_sync_env_providers({"OLLAMA_BASE_URL": "http://gpu-box:11434/v1"})
    assert [c.name for c in synced] == ["ollama"]
    ollama = ProviderConfig.objects.get(name="ollama")
    assert ollama.effective_base_url == "http://gpu-box:11434/v1"
    assert ollama.api_key_encrypted == "" and ollama.api_key == ""


def test_ollama_key_without_base_url_enables_nothing():
    assert do_sync_env_providers({"OLLAMA_API_KEY": "unused"}) == []


def test_oracle_key_without_base_url_is_improperly_configured():
    with pytest.raises(ImproperlyConfigured, match="ORACLE_BASE_URL"):
        do_sync_env_providers({"ORACLE_API_KEY": "oci-key", "OPENAI_API_KEY": "sk-1"})
    assert not ProviderConfig.objects.exists()  # nothing half-done


def test_oracle_with_key_and_base_url():
    do_sync_env_providers({"ORACLE_API_KEY": "oci-key", "ORACLE_BASE_URL": "https://oci.example.com/v1/"})
    oracle = ProviderConfig.objects.get(name="oracle")
    assert oracle.effective_base_url == "https://oci.example.com/v1"
    assert oracle.api_key == "oci-key"


def test_a_provider_removed_from_the_environment_is_disabled_not_deleted():
    do_sync_env_providers({"OPENAI_API_KEY": "sk-1", "GROQ_API_KEY": "gsk-2"})
    do_sync_env_providers({"GROQ_API_KEY": "gsk-2"})
    configs = rows()
    assert set(configs) == {"openai", "groq"}
    assert configs["openai"].enabled is False and configs["groq"].enabled is True
    # It comes back when its variables do.
    do_sync_env_providers({"OPENAI_API_KEY": "sk-1"})
    configs = rows()
    assert configs["openai"].enabled is True and configs["groq"].enabled is False


def test_admin_providers_are_left_alone():
    admin = ProviderConfig(name="my-openrouter", provider_type="openrouter", source=ProviderConfig.SOURCE_ADMIN)
    admin.set_api_key("sk-or")
    admin.save()
    do_sync_env_providers({"OPENAI_API_KEY": "sk-1"})
    do_sync_env_providers({})
    admin.refresh_from_db()
    assert admin.enabled is True and admin.api_key == "sk-or"


def test_resync_updates_a_rotated_key_and_keeps_an_unchanged_one():
    do_sync_env_providers({"OPENAI_API_KEY": "sk-1", "GROQ_API_KEY": "gsk-1"})
    before = rows()
    do_sync_env_providers({"OPENAI_API_KEY": "sk-2", "GROQ_API_KEY": "gsk-1", "GROQ_BASE_URL": "http://proxy/v1"})
    after = rows()
    assert after["openai"].api_key == "sk-2"
    assert after["openai"].api_key_encrypted != before["openai"].api_key_encrypted
    assert after["groq"].api_key_encrypted == before["groq"].api_key_encrypted  # not rewritten
    assert after["groq"].effective_base_url == "http://proxy/v1"
    assert ProviderConfig.objects.count() == 2


def test_env_providers_is_in_catalogue_order():
    found = env_providers({"XAI_API_KEY": "a", "OPENAI_API_KEY": "b", "BAILIAN_API_KEY": "c"})
    assert [p["name"] for p in found] == ["openai", "xai", "bailian"]


def test_quotas_from_the_environment_audited_and_cleared_when_unset():
    from accounting.models import AuditEntry

    do_sync_env_providers({"OPENAI_API_KEY": "sk-1", "OPENAI_RPM": "500", "OPENAI_CONCURRENCY": "20",
                           "OPENAI_MODEL_QUOTAS": '{"gpt-4o": {"tpm": 30000}}'})
    config = rows()["openai"]
    assert (config.rpm_limit, config.tpm_limit, config.concurrency_limit) == (500, None, 20)
    assert config.as_target().quota.of_model("gpt-4o") == ("gpt-4o", None, 30000, None)
    do_sync_env_providers({"OPENAI_API_KEY": "sk-1"})
    config = rows()["openai"]
    assert config.as_target().quota is None  # no quota: the gateway makes no Redis call for this provider
    assert AuditEntry.objects.filter(object_type="providerconfig", action="update",
                                     changes__has_key="rpm_limit").exists()


@pytest.mark.parametrize("environ", [{"OPENAI_RPM": "0"}, {"OPENAI_TPM": "lots"},
                                     {"OPENAI_MODEL_QUOTAS": "{"}, {"OPENAI_MODEL_QUOTAS": '{"m": {"rpm": -1}}'}])
def test_bad_quotas_in_the_environment_are_improperly_configured(environ):
    with pytest.raises(ImproperlyConfigured):
        env_providers({"OPENAI_API_KEY": "sk-1", **environ})
