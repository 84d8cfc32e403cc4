"""Who is calling: the key is hashed and looked up in an in-process cache; only a miss reads the DB.

The cache is cleared through Redis whenever a key or tenant changes (gomodel.gateway.invalidation), and
entries also expire after AUTH_CACHE_TTL as a safety net should an invalidation be missed.
"""

import hmac
import time
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from accounting.keys import hash_key

from .errors import AUTHENTICATION, GatewayError

NEGATIVE_TTL = 5.0  # an unknown key is re-checked against the DB at most this often


@dataclass(frozen=True)
class Principal:
    tenant_id: int | None
    tenant_slug: str | None
    key_id: int | None
    key_prefix: str | None
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    expires_at: float | None = None  # epoch seconds

    @property
    def is_master(self) -> bool:
        return self.key_id is None


MASTER = Principal(tenant_id=None, tenant_slug=None, key_id=None, key_prefix="master")


def lookup_key(key_hash: str) -> Principal | None:
    from accounting.models import ApiKey

    close_old_connections()
    key = ApiKey.objects.select_related("tenant").filter(key_hash=key_hash).first()
    if key is None or not key.active or not key.tenant.active:
        return None
    return Principal(
        tenant_id=key.tenant_id, tenant_slug=key.tenant.slug, key_id=key.id, key_prefix=key.prefix,
        rpm_limit=key.rpm_limit, tpm_limit=key.tpm_limit,
        expires_at=key.expires_at.timestamp() if key.expires_at else None,
    )


def presented_key(headers: dict[bytes, bytes]) -> str | None:
    value = headers.get(b"authorization")
    if value:
        scheme, _, token = value.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    value = headers.get(b"x-api-key")
    if value:
        return value.decode("latin-1").strip() or None
    return None


class KeyCache:
    def __init__(self):
        self._entries: dict[str, tuple[Principal | None, float]] = {}
        self._generation = 0  # bumped by clear(): a lookup that straddles a clear is not cached

    def clear(self):
        self._entries.clear()
        self._generation += 1

    async def authenticate(self, headers: dict[bytes, bytes]) -> Principal:
        key = presented_key(headers)
        if key is None:
            raise GatewayError(401, AUTHENTICATION, "Missing API key: send 'Authorization: Bearer <key>' or "
                               "'x-api-key: <key>'.", code="missing_api_key")
        master = settings.GOMODEL_MASTER_KEY
        if master and hmac.compare_digest(key.encode(), master.encode()):
            return MASTER
        key_hash = hash_key(key)
        now = time.monotonic()
        entry = self._entries.get(key_hash)
        if entry is None or entry[1] < now:
            generation = self._generation
            principal = await sync_to_async(lookup_key, thread_sensitive=True)(key_hash)
            ttl = settings.AUTH_CACHE_TTL if principal else min(NEGATIVE_TTL, settings.AUTH_CACHE_TTL)
            if len(self._entries) > 100_000:  # bounded: a flood of random keys must not grow memory
                self._entries.clear()
            entry = (principal, now + ttl)
            if generation == self._generation:  # else a change landed mid-lookup: this answer may be stale
                self._entries[key_hash] = entry
        principal = entry[0]
        if principal is None or (principal.expires_at is not None and principal.expires_at <= time.time()):
            raise GatewayError(401, AUTHENTICATION, "Invalid, revoked or expired API key.", code="invalid_api_key")
        return principal
