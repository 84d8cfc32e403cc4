"""A provider config's key pool: <P>_API_KEY_2, _3, … synced into it, the domain services' audited writes, and
what the registry loads from it (real database)."""

import pytest

from accounting.audit.services import DomainError
from accounting.models import AuditEntry
from accounting.provider_configs import services
from gomodel.gateway.key_pool import KeyPool, KeyStates, affinity
from gomodel.gateway.registry import load_config
from providers.base import Target
from providers.env_sync import extra_keys
from providers.models import ProviderConfig

pytestmark = [pytest.mark.django_db]


def labels(config) -> dict[str, str]:
    return {key.label: key.api_key for key in config.extra_keys.all()}


def test_numbered_env_keys_are_read_in_order_gaps_allowed():
    env = {"OPENAI_API_KEY": "a", "OPENAI_API_KEY_3": " c ", "OPENAI_API_KEY_2": "b", "OPENAI_API_KEY_10": "j",
           "OPENAI_API_KEY_1": "ignored", "OPENAI_API_KEY_X": "ignored", "OPENAI_API_KEY_4": " "}
    assert extra_keys(env, "OPENAI") == [("key-2", "b"), ("key-3", "c"), ("key-10", "j")]


def test_env_keys_sync_into_the_pool_audited():
    [config] = services.do_sync_env_providers({"OPENAI_API_KEY": "sk-a", "OPENAI_API_KEY_2": "sk-b",
                                               "OPENAI_API_KEY_3": "sk-c"})
    assert config.api_key == "sk-a" and labels(config) == {"key-2": "sk-b", "key-3": "sk-c"}
    key = config.extra_keys.get(label="key-2")
    assert key.source == "env" and "sk-b" not in key.api_key_encrypted
    assert AuditEntry.objects.filter(object_type="providerkey", action="create").count() == 2
    # Unchanged: nothing written; changed: re-encrypted; gone: removed. Each audited, never with the key.
    before = AuditEntry.objects.count()
    services.do_sync_env_providers({"OPENAI_API_KEY": "sk-a", "OPENAI_API_KEY_2": "sk-b", "OPENAI_API_KEY_3": "sk-c"})
    assert AuditEntry.objects.count() == before
    services.do_sync_env_providers({"OPENAI_API_KEY": "sk-a", "OPENAI_API_KEY_2": "sk-b2"})
    assert labels(config) == {"key-2": "sk-b2"}
    actions = sorted(AuditEntry.objects.filter(object_type="providerkey").values_list("action", flat=True))
    assert actions == ["create", "create", "delete", "update"]
    assert not any("sk-" in str(entry.changes) for entry in AuditEntry.objects.all())


def test_admin_keys_get_the_next_free_label_and_env_rows_refuse_them():
    config = ProviderConfig(name="mine", provider_type="openai")
    config.set_api_key("sk-1")
    config.save()
    assert services.do_add_provider_key("ops", config, "sk-2").label == "key-2"
    assert services.do_add_provider_key("ops", config, "sk-x", "backup").label == "backup"
    assert services.do_add_provider_key("ops", config, "sk-3").label == "key-3"
    with pytest.raises(DomainError):
        services.do_add_provider_key("ops", config, "sk-4", "key-1")  # the config's own key's label
    [env] = services.do_sync_env_providers({"GROQ_API_KEY": "gsk-1"})
    with pytest.raises(DomainError):
        services.do_add_provider_key("ops", env, "gsk-2")
    services.do_set_provider_keys("ops", config, [{"api_key": "sk-new", "label": "backup"}])
    assert labels(config) == {"backup": "sk-new"}


def test_a_rejected_key_leaves_the_pool_until_replaced():
    config = ProviderConfig(name="mine", provider_type="openai")
    config.set_api_key("sk-1")
    config.save()
    services.do_add_provider_key("ops", config, "sk-2")
    assert services.do_reject_provider_key(config.pk, "key-2", 401) is True
    assert services.do_reject_provider_key(config.pk, "key-2", 401) is False  # once
    assert services.do_reject_provider_key(config.pk, "key-1", 403) is True
    config.refresh_from_db()
    usable, rejected = config.key_pool()
    assert usable == [] and rejected == ["key-1", "key-2"]
    services.do_update_provider("ops", config, {"api_key": "sk-1b"})  # a new own key is given its chance
    config.refresh_from_db()
    usable, rejected = config.key_pool()
    assert [t.key_label for t in usable] == ["key-1"] and rejected == ["key-2"]
    services.do_update_provider_key("ops", config.extra_keys.get(), reinstate=True)
    assert [t.key_label for t in config.key_pool()[0]] == ["key-1", "key-2"]


@pytest.mark.django_db(transaction=True)  # load_targets closes old connections: committed rows
def test_the_registry_loads_pools_only_where_there_is_a_choice():
    one = ProviderConfig(name="one", provider_type="openai")
    one.set_api_key("sk-1")
    one.save()
    two = ProviderConfig(name="two", provider_type="openai")
    two.set_api_key("sk-a")
    two.save()
    services.do_add_provider_key("ops", two, "sk-b")
    targets, _, _, pools = load_config()  # what the registry's reload reads (in its sync thread)
    assert [t.name for t in targets] == ["one", "two"]
    assert set(pools.by_id) == {two.pk}
    assert [(t.key_label, t.api_key) for t in pools.by_id[two.pk].members] == [("key-1", "sk-a"),
                                                                                        ("key-2", "sk-b")]


def test_affinity_and_order():
    members = [Target(id=1, name="p", provider_type="openai", wire="openai", base_url="", api_key=f"k{i}",
                      key_label=f"key-{i}") for i in (1, 2, 3)]
    pool, states = KeyPool(members), KeyStates(None)
    assert [pool.order(None, states)[0].key_label for _ in range(6)] == ["key-1", "key-2", "key-3"] * 2
    assert affinity({"user": "u"}) == "u" and affinity({"prompt_cache_key": "c", "user": "u"}) == "c"
    assert affinity({"metadata": {"user_id": "m"}}) == "m" and affinity({"messages": []}) is None
    first = pool.order({"user": "alice"}, states)
    assert all(pool.order({"user": "alice"}, states) == first for _ in range(5))
    states.out.add((1, first[0].key_label))
    assert pool.order({"user": "alice"}, states) == first[1:]


def test_rotation_re_encrypts_the_further_keys_too(settings):
    from cryptography.fernet import Fernet

    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.GOMODEL_ENCRYPTION_KEYS = [first]
    [config] = services.do_sync_env_providers({"OPENAI_API_KEY": "sk-a", "OPENAI_API_KEY_2": "sk-b"})
    settings.GOMODEL_ENCRYPTION_KEYS = [second, first]
    assert services.do_rotate_provider_keys() == (2, [])
    assert AuditEntry.objects.filter(object_type="providerkey", action="rotate_key").count() == 1
    settings.GOMODEL_ENCRYPTION_KEYS = [second]  # the old key dropped: both still open
    assert labels(config) == {"key-2": "sk-b"}
    settings.GOMODEL_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    assert services.do_rotate_provider_keys() == (0, ["openai", "openai/key-2"])
