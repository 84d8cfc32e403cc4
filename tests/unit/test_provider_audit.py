"""Every write to provider rows leaves its audit row in the same transaction — also the ones no person makes:
the start-up sync of the environment's providers and virtual models (`manage.py sync_providers`) and the key
rotation (`manage.py rotate_provider_keys`). Key material never enters an audit row."""

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command

from accounting.models import AuditEntry
from accounting.provider_configs.services import (
    do_rotate_provider_keys,
    do_sync_env_aliases,
    do_sync_env_providers,
)
from providers.models import ModelAlias, ProviderConfig

pytestmark = [pytest.mark.django_db]

SECRET = "sk-openai-audit-secret-1"


def entries(object_type: str = "providerconfig") -> list[tuple[str, str, str, dict]]:
    return [(e.actor, e.action, e.object_repr.split(" ")[0], e.changes)
            for e in AuditEntry.objects.filter(object_type=object_type).order_by("id")]


def no_secret_in_the_trail():
    for entry in AuditEntry.objects.all():
        assert SECRET not in str(entry.changes) and "api_key_encrypted" not in entry.changes


def test_the_env_sync_audits_each_provider_it_creates():
    do_sync_env_providers({"OPENAI_API_KEY": SECRET, "GROQ_API_KEY": "gsk-1"})
    found = entries()
    assert [(actor, action, name) for actor, action, name, _ in found] == [
        ("system", "create", "openai"), ("system", "create", "groq")]
    assert found[0][3]["source"] == "env" and found[0][3]["api_key_set"] is True
    no_secret_in_the_trail()


def test_an_unchanged_environment_writes_nothing_and_audits_nothing():
    do_sync_env_providers({"OPENAI_API_KEY": SECRET})
    before = AuditEntry.objects.count()
    do_sync_env_providers({"OPENAI_API_KEY": SECRET})
    assert AuditEntry.objects.count() == before


def test_a_changed_key_or_base_url_is_an_update_and_a_vanished_provider_a_disable():
    do_sync_env_providers({"OPENAI_API_KEY": "sk-old", "GROQ_API_KEY": "gsk-1"})
    do_sync_env_providers({"OPENAI_API_KEY": SECRET, "OPENAI_BASE_URL": "http://proxy/v1"})
    updates = [(action, name, changes) for _, action, name, changes in entries()[2:]]
    assert updates == [("update", "openai", {"base_url": ["", "http://proxy/v1"], "api_key_changed": True}),
                       ("disable", "groq", {"enabled": [True, False]})]
    no_secret_in_the_trail()


def test_the_sync_and_its_audit_rows_commit_together(monkeypatch):
    def broken_record(*args, **kwargs):
        raise RuntimeError("audit table unavailable")

    monkeypatch.setattr("accounting.provider_configs.services.record", broken_record)
    with pytest.raises(RuntimeError):
        do_sync_env_providers({"OPENAI_API_KEY": SECRET})
    assert not ProviderConfig.objects.exists()


def test_the_env_aliases_are_audited():
    do_sync_env_aliases('{"fast": ["openai/gpt-4o-mini"]}')
    do_sync_env_aliases('{"fast": ["openai/gpt-4o-mini"]}')  # unchanged: nothing written
    do_sync_env_aliases('{"fast": {"openai/gpt-4o-mini": 2}}')
    do_sync_env_aliases("")
    assert [(actor, action, name) for actor, action, name, _ in entries("modelalias")] == [
        ("system", "create", "fast"), ("system", "update", "fast"), ("system", "disable", "fast")]
    assert ModelAlias.objects.get(name="fast").enabled is False


def test_the_sync_providers_command_goes_through_the_audited_service(monkeypatch):
    monkeypatch.setenv("GROQ_API_KEY", "gsk-from-env")
    monkeypatch.setenv("VIRTUAL_MODELS", '{"cheap": ["groq/llama-3.1-8b-instant"]}')
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "XAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    call_command("sync_providers")
    assert ("system", "create", "groq") in [(a, b, c) for a, b, c, _ in entries()]
    assert [(a, b, c) for a, b, c, _ in entries("modelalias")] == [("system", "create", "cheap")]


def test_rotating_the_provider_keys_audits_each_key_re_encrypted(settings):
    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.GOMODEL_ENCRYPTION_KEYS = [first]
    do_sync_env_providers({"OPENAI_API_KEY": SECRET, "GROQ_API_KEY": "gsk-1"})
    settings.GOMODEL_ENCRYPTION_KEYS = [second, first]
    call_command("rotate_provider_keys")
    rotations = [(actor, name, changes) for actor, action, name, changes in entries() if action == "rotate_key"]
    assert rotations == [("system", "openai", {"api_key_reencrypted": True}),
                         ("system", "groq", {"api_key_reencrypted": True})]
    settings.GOMODEL_ENCRYPTION_KEYS = [second]
    assert ProviderConfig.objects.get(name="openai").api_key == SECRET
    no_secret_in_the_trail()


def test_a_key_no_configured_key_opens_is_reported_not_rotated_nor_audited(settings):
    settings.GOMODEL_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    do_sync_env_providers({"OPENAI_API_KEY": SECRET})
    settings.GOMODEL_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    assert do_rotate_provider_keys() == (0, ["openai"])
    assert not [e for e in entries() if e[1] == "rotate_key"]
