"""gomodel.gateway.auth: which header carries the key, and the in-process key cache over the real DB."""

import time
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.utils import timezone

from accounting.models import ApiKey
from accounting.tenants.keys import hash_key
from accounting.tenants.services import do_create_api_key, do_create_tenant
from gomodel.gateway.auth import MASTER, KeyCache, presented_key
from gomodel.gateway.errors import GatewayError


@pytest.mark.parametrize("headers, expected", [
    ({b"authorization": b"Bearer sk_gom_abc"}, "sk_gom_abc"),
    ({b"authorization": b"bearer   sk_gom_abc  "}, "sk_gom_abc"),
    ({b"x-api-key": b" sk_gom_abc "}, "sk_gom_abc"),
    ({b"authorization": b"Bearer sk_gom_a", b"x-api-key": b"sk_gom_b"}, "sk_gom_a"),
    ({b"authorization": b"Basic dXNlcjpwYXNz", b"x-api-key": b"sk_gom_b"}, "sk_gom_b"),
    ({b"authorization": b"Bearer"}, None),
    ({b"authorization": b"sk_gom_abc"}, None),  # no scheme
    ({b"x-api-key": b"  "}, None),
    ({}, None),
])
def test_presented_key(headers, expected):
    assert presented_key(headers) == expected


def authenticate(cache, key=None, header=b"authorization"):
    headers = {} if key is None else {header: (f"Bearer {key}" if header == b"authorization" else key).encode()}
    return async_to_sync(cache.authenticate)(headers)


def rejected(cache, key, code="invalid_api_key"):
    with pytest.raises(GatewayError) as caught:
        authenticate(cache, key)
    assert (caught.value.status, caught.value.type, caught.value.code) == (401, "authentication_error", code)
    return caught.value


@pytest.fixture
def acme(transactional_db):
    # lookup_key() calls close_old_connections(), as a request would: that closes a connection held in a
    # test transaction, so these tests commit for real (transactional_db).
    tenant = do_create_tenant("acme")
    key, plaintext = do_create_api_key(tenant, name="ci", rpm=60, tpm=1000)
    return tenant, key, plaintext


def test_a_valid_key_gives_its_principal(acme):
    tenant, key, plaintext = acme
    principal = authenticate(KeyCache(), plaintext)
    assert (principal.tenant_id, principal.tenant_slug, principal.key_id, principal.key_prefix) == (
        tenant.id, "acme", key.id, key.prefix)
    assert (principal.rpm_limit, principal.tpm_limit, principal.expires_at) == (60, 1000, None)
    assert not principal.is_master


def test_missing_key():
    rejected(KeyCache(), None, code="missing_api_key")


def test_master_key(transactional_db, settings):
    principal = authenticate(KeyCache(), settings.GOMODEL_MASTER_KEY, header=b"x-api-key")
    assert principal is MASTER and principal.is_master
    rejected(KeyCache(), settings.GOMODEL_MASTER_KEY + "x")


def test_no_master_key_configured_means_none_is_accepted(transactional_db, settings):
    settings.GOMODEL_MASTER_KEY = ""
    rejected(KeyCache(), "sk_master_test_0123456789")


def test_a_warm_key_is_served_from_the_cache_until_cleared(acme, django_assert_num_queries):
    _, key, plaintext = acme
    cache = KeyCache()
    with django_assert_num_queries(1):
        authenticate(cache, plaintext)
    ApiKey.objects.filter(id=key.id).update(active=False)  # behind the cache's back
    with django_assert_num_queries(0):
        authenticate(cache, plaintext)
    cache.clear()  # what an invalidation does
    rejected(cache, plaintext)


def test_cache_entries_expire_after_the_ttl(acme, settings):
    _, key, plaintext = acme
    settings.AUTH_CACHE_TTL = 60
    now = [1000.0]
    cache = KeyCache(clock=lambda: now[0])
    authenticate(cache, plaintext)
    ApiKey.objects.filter(id=key.id).update(active=False)
    now[0] += 59
    authenticate(cache, plaintext)  # still cached
    now[0] += 2
    rejected(cache, plaintext)


def test_an_unknown_key_is_cached_as_unknown_until_cleared(acme):
    tenant, _, _ = acme
    cache = KeyCache()
    rejected(cache, "sk_gom_later")
    ApiKey.objects.create(tenant=tenant, key_hash=hash_key("sk_gom_later"), prefix="sk_gom_…ater")
    rejected(cache, "sk_gom_later")  # negative cache
    cache.clear()
    assert authenticate(cache, "sk_gom_later").tenant_slug == "acme"


def test_revoked_and_inactive_tenant_keys_are_rejected(acme):
    tenant, key, plaintext = acme
    key.active = False
    key.save()
    rejected(KeyCache(), plaintext)
    key.active = True
    key.save()
    tenant.active = False
    tenant.save()
    rejected(KeyCache(), plaintext)


def test_expired_key_is_rejected_even_from_the_cache(acme, monkeypatch):
    tenant, _, _ = acme
    key, plaintext = do_create_api_key(tenant, expires_at=timezone.now() + timedelta(hours=1))
    cache = KeyCache()
    assert authenticate(cache, plaintext).expires_at == pytest.approx(key.expires_at.timestamp())
    later = time.time() + 2 * 3600
    monkeypatch.setattr("gomodel.gateway.auth.time.time", lambda: later)
    rejected(cache, plaintext)


def test_already_expired_key(acme):
    tenant, _, _ = acme
    _, plaintext = do_create_api_key(tenant, expires_at=timezone.now() - timedelta(seconds=1))
    rejected(KeyCache(), plaintext)


def test_an_invalidation_during_a_lookup_is_not_undone_by_it(acme, monkeypatch):
    """The key is revoked (and the cache cleared) while a cold lookup is reading it: the lookup's now stale
    answer may serve the request that made it, but must not be cached for the requests after."""
    from gomodel.gateway import auth

    _, key, plaintext = acme
    cache = KeyCache()
    real_lookup = auth.lookup_key

    def lookup_then_revoke(key_hash):
        principal = real_lookup(key_hash)  # read while still active
        ApiKey.objects.filter(id=key.id).update(active=False)
        cache.clear()  # what the revocation's invalidation does, landing mid-lookup
        return principal

    monkeypatch.setattr(auth, "lookup_key", lookup_then_revoke)
    assert authenticate(cache, plaintext).key_id == key.id
    monkeypatch.setattr(auth, "lookup_key", real_lookup)
    rejected(cache, plaintext)


def test_a_flood_of_random_keys_does_not_evict_a_real_one(acme, django_assert_num_queries):
    """200k random keys through the cache: the real key stays cached (no DB query next time) and the junk
    is bounded. The random keys' lookups answer None without asking the DB (as it would): 200k real
    queries would take minutes; the next test floods through the real DB, with a smaller cache."""
    import secrets

    from gomodel.gateway import auth

    _, key, plaintext = acme
    real_hash = hash_key(plaintext)
    looked_up = []

    async def lookup(key_hash):
        looked_up.append(key_hash)
        return await sync_to_async(auth.lookup_key)(key_hash) if key_hash == real_hash else None

    cache = KeyCache(lookup=lookup)
    first_junk = "sk_gom_" + secrets.token_hex(16)

    async def flood():
        await cache.authenticate({b"authorization": f"Bearer {plaintext}".encode()})
        for i in range(200_000):
            junk = first_junk if i == 0 else "sk_gom_" + secrets.token_hex(16)
            with pytest.raises(GatewayError):
                await cache.authenticate({b"authorization": f"Bearer {junk}".encode()})

    async_to_sync(flood)()
    assert len(looked_up) == 200_001
    with django_assert_num_queries(0):
        assert authenticate(cache, plaintext).key_id == key.id
    assert len(looked_up) == 200_001  # the real key came from the cache
    rejected(cache, first_junk)  # the oldest junk was evicted (bounded): it is looked up again
    assert looked_up[-1] == hash_key(first_junk)


def test_unknown_keys_are_rechecked_after_the_negative_ttl(acme, django_assert_num_queries):
    now = [1000.0]
    cache = KeyCache(clock=lambda: now[0])
    rejected(cache, "sk_gom_not_yet")
    with django_assert_num_queries(0):
        rejected(cache, "sk_gom_not_yet")
    now[0] += 5.1  # NEGATIVE_TTL later, without sleeping
    with django_assert_num_queries(1):
        rejected(cache, "sk_gom_not_yet")


def test_junk_through_the_real_database_evicts_only_junk(acme, django_assert_num_queries):
    _, key, plaintext = acme
    cache = KeyCache(max_unknown=50)
    authenticate(cache, plaintext)
    for i in range(300):
        rejected(cache, f"sk_gom_junk_{i}")
    with django_assert_num_queries(0):
        assert authenticate(cache, plaintext).key_id == key.id
    with django_assert_num_queries(0):
        rejected(cache, "sk_gom_junk_299")  # recent junk is still cached as unknown
    with django_assert_num_queries(1):
        rejected(cache, "sk_gom_junk_0")  # old junk was evicted


def test_valid_keys_are_evicted_least_recently_used_first(acme, django_assert_num_queries):
    tenant, _, first = acme
    second, third = (do_create_api_key(tenant, name=n)[1] for n in ("b", "c"))
    cache = KeyCache(max_known=2)
    authenticate(cache, first)
    authenticate(cache, second)
    authenticate(cache, first)  # used again: `second` is now the least recently used
    authenticate(cache, third)
    with django_assert_num_queries(0):
        authenticate(cache, first)
        authenticate(cache, third)
    with django_assert_num_queries(1):
        authenticate(cache, second)
