"""#12 item 8: replicas with different encryption keys. A second replica must not overwrite (and so break)
the provider keys the first stored; a key this process cannot decrypt is loud: a log line naming the
provider, /health/ready 503 naming it, and its requests a 503 that says why — never a 404."""

import logging

import httpx
import openai
import pytest
from cryptography.fernet import Fernet

from accounting.provider_configs.services import do_sync_env_providers
from gomodel.gateway.runtime import invalidate_local
from providers.models import ProviderConfig

pytestmark = [pytest.mark.e2e]

FIRST, SECOND = Fernet.generate_key().decode(), Fernet.generate_key().decode()


@pytest.fixture
def env(upstream):
    return {"GROQ_API_KEY": "gsk-replica-secret-1", "GROQ_BASE_URL": upstream.base_url, "GROQ_MODELS": "gpt-4o-mini"}


def chat(gateway, plaintext, model="groq/gpt-4o-mini"):
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key=plaintext, max_retries=0)
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])


def test_a_replica_with_other_keys_leaves_the_first_replicas_rows_alone(gateway, tenant_key, env, settings, caplog):
    settings.GOMODEL_ENCRYPTION_KEYS = [FIRST]
    do_sync_env_providers(env)
    stored = ProviderConfig.objects.get(name="groq").api_key_encrypted
    assert chat(gateway, tenant_key[2]).choices[0].message.content

    settings.GOMODEL_ENCRYPTION_KEYS = [SECOND]  # the second replica starts with other keys
    with caplog.at_level(logging.ERROR, logger="accounting.provider_configs.services"):
        do_sync_env_providers(env)
    assert ProviderConfig.objects.get(name="groq").api_key_encrypted == stored  # not re-encrypted
    assert any("groq" in r.getMessage() and "cannot be decrypted" in r.getMessage() for r in caplog.records)

    settings.GOMODEL_ENCRYPTION_KEYS = [FIRST]  # the first replica still serves
    invalidate_local("all")
    assert chat(gateway, tenant_key[2]).choices[0].message.content


def test_an_unchanged_env_key_is_not_re_encrypted(transactional_db, env, settings):
    settings.GOMODEL_ENCRYPTION_KEYS = [FIRST]
    do_sync_env_providers(env)
    before = ProviderConfig.objects.get(name="groq")
    do_sync_env_providers(env)
    after = ProviderConfig.objects.get(name="groq")
    assert (after.api_key_encrypted, after.updated_at) == (before.api_key_encrypted, before.updated_at)
    do_sync_env_providers({**env, "GROQ_API_KEY": "gsk-new-key-2"})
    assert ProviderConfig.objects.get(name="groq").api_key == "gsk-new-key-2"


def test_replace_undecryptable_overwrites_on_purpose(transactional_db, env, settings):
    settings.GOMODEL_ENCRYPTION_KEYS = [FIRST]
    do_sync_env_providers(env)
    settings.GOMODEL_ENCRYPTION_KEYS = [SECOND]
    do_sync_env_providers(env, replace_undecryptable=True)
    assert ProviderConfig.objects.get(name="groq").api_key == "gsk-replica-secret-1"


def test_an_undecryptable_key_is_loud(gateway, tenant_key, env, settings, caplog):
    settings.GOMODEL_ENCRYPTION_KEYS = [FIRST]
    do_sync_env_providers(env)
    settings.GOMODEL_ENCRYPTION_KEYS = [SECOND]
    invalidate_local("all")
    with caplog.at_level(logging.ERROR):
        ready = httpx.get(f"{gateway}/health/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["provider_keys"] is False
    assert ready.json()["undecryptable_providers"] == ["groq"]
    assert any("provider groq" in r.getMessage() and "cannot be decrypted" in r.getMessage()
               for r in caplog.records)
    assert "gsk-replica" not in ready.text

    for model in ("groq/gpt-4o-mini", "gpt-4o-mini"):
        with pytest.raises(openai.APIStatusError) as raised:
            chat(gateway, tenant_key[2], model)
        assert raised.value.status_code == 503, model
        assert raised.value.body["code"] == "provider_key_undecryptable"
        assert "groq" in raised.value.body["message"]

    settings.GOMODEL_ENCRYPTION_KEYS = [SECOND, FIRST]  # the old key added back (rotation): healthy again
    invalidate_local("all")
    assert httpx.get(f"{gateway}/health/ready").status_code == 200
    assert chat(gateway, tenant_key[2]).choices[0].message.content


def test_rotate_provider_keys_re_encrypts_with_the_newest_key(transactional_db, env, settings):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    settings.GOMODEL_ENCRYPTION_KEYS = [FIRST]
    do_sync_env_providers(env)
    settings.GOMODEL_ENCRYPTION_KEYS = [SECOND, FIRST]
    call_command("rotate_provider_keys")
    settings.GOMODEL_ENCRYPTION_KEYS = [SECOND]  # the old key dropped: still readable
    assert ProviderConfig.objects.get(name="groq").api_key == "gsk-replica-secret-1"

    settings.GOMODEL_ENCRYPTION_KEYS = [FIRST]  # a key that opens nothing: the command says which
    with pytest.raises(CommandError, match="groq"):
        call_command("rotate_provider_keys")
