"""Who is calling: the key is hashed and looked up in an in-process cache; only a miss reads the DB.

The cache is cleared through Redis whenever a key or tenant changes (gomodel.gateway.invalidation), and
entries also expire after AUTH_CACHE_TTL as a safety net should an invalidation be missed.
"""

import hmac
import time
from collections import OrderedDict
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from accounting.budgets.counters import budgets_of, label_budgets_of, user_budget_of
from accounting.limits.allowlists import EMPTY, AllowList
from accounting.tenants.keys import hash_key

from .errors import AUTHENTICATION, GatewayError
from .response_cache import policy_of

NEGATIVE_TTL = 5.0  # an unknown key is re-checked against the DB at most this often
MAX_KNOWN = 100_000  # valid keys cached (least recently used go first)
MAX_UNKNOWN = 10_000  # invalid keys cached, apart: a flood of junk evicts only junk


@dataclass(frozen=True)
class Principal:
    tenant_id: int | None
    tenant_slug: str | None
    key_id: int | None
    key_prefix: str | None
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    expires_at: float | None = None  # epoch seconds
    # Rate limits and allow-lists, loaded with the key so that a warm request reads no row (limits.py).
    concurrency_limit: int | None = None
    tenant_rpm_limit: int | None = None
    tenant_tpm_limit: int | None = None
    tenant_concurrency_limit: int | None = None
    allowed_models: AllowList = EMPTY
    tenant_allowed_models: AllowList = EMPTY
    budgets: tuple = ()  # accounting.budgets.Budget of the tenant and of the key, those that are set
    cache: object = None  # response_cache.CachePolicy of the key (its tenant's where it sets none); None: off
    labels: tuple[tuple[str, str], ...] = ()  # the key's labels (name, value): every call of it carries them
    user_rpm_limit: int | None = None  # each end user of the tenant (limits.py: a scope per user named)
    user_tpm_limit: int | None = None
    user_budget: object = None  # accounting.budgets.Budget the tenant gives each end user (Budget.for_user)
    label_budgets: tuple = ()  # the tenant's budgets per label value: (name, value, Budget) each
    # The tenant's limits per label: (name, value, rpm, tpm) each (limits.py: a scope per matching label)
    label_limits: tuple[tuple[str, str, int | None, int | None], ...] = ()

    @property
    def is_master(self) -> bool:
        return self.key_id is None

    @property
    def key_limited(self) -> bool:
        return self.rpm_limit is not None or self.tpm_limit is not None or self.concurrency_limit is not None

    @property
    def user_limited(self) -> bool:
        return self.user_rpm_limit is not None or self.user_tpm_limit is not None

    @property
    def tenant_limited(self) -> bool:
        return (self.tenant_rpm_limit is not None or self.tenant_tpm_limit is not None
                or self.tenant_concurrency_limit is not None)


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
        concurrency_limit=key.concurrency_limit, tenant_rpm_limit=key.tenant.rpm_limit,
        tenant_tpm_limit=key.tenant.tpm_limit, tenant_concurrency_limit=key.tenant.concurrency_limit,
        allowed_models=AllowList(key.allowed_models) if key.allowed_models else EMPTY,
        tenant_allowed_models=AllowList(key.tenant.allowed_models) if key.tenant.allowed_models else EMPTY,
        budgets=budgets_of(key),
        cache=policy_of(key),
        labels=tuple(key.labels.items()) if isinstance(key.labels, dict) else (),
        user_rpm_limit=key.tenant.user_rpm_limit, user_tpm_limit=key.tenant.user_tpm_limit,
        label_limits=label_limits_of(key.tenant.label_limits),
        user_budget=user_budget_of(key.tenant),
        label_budgets=label_budgets_of(key.tenant),
    )


def label_limits_of(value) -> tuple[tuple[str, str, int | None, int | None], ...]:
    """A tenant's `label_limits` (validated when saved) as the limiter reads them."""
    found: list[tuple[str, str, int | None, int | None]] = []
    for label, limits in (value.items() if isinstance(value, dict) else ()):
        if isinstance(label, str) and ":" in label and isinstance(limits, dict):
            name, _, text = label.partition(":")
            found.append((name, text, limits.get("rpm"), limits.get("tpm")))
    return tuple(found)


def presented_key(headers: dict[bytes, bytes]) -> str | None:
    value = headers.get(b"authorization")
    if value:
        scheme, _, token = value.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    for name in (b"x-api-key", b"x-goog-api-key"):  # Anthropic's and Gemini's clients (passthrough) send these
        value = headers.get(name)
        if value:
            return value.decode("latin-1").strip() or None
    return None


class KeyCache:
    """Two bounded LRUs: keys that exist, and keys that do not (kept NEGATIVE_TTL). Junk lands only
    in the second, so a flood of random keys can neither evict a tenant nor grow memory."""

    def __init__(self, max_known: int = MAX_KNOWN, max_unknown: int = MAX_UNKNOWN, lookup=None,
                 clock=time.monotonic):
        self._known: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self._max_known, self._max_unknown = max_known, max_unknown
        self._lookup = lookup  # an async (key_hash) -> Principal | None; default: the DB, in the sync thread
        self._generation = 0  # bumped by clear(): a lookup that straddles a clear is not cached
        self._clock = clock  # seconds, for the TTLs (tests pass their own)

    def clear(self):
        self._known.clear()
        self._unknown.clear()
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
        now = self._clock()
        entry = self._known.get(key_hash)
        if entry is not None and entry[1] >= now:
            self._known.move_to_end(key_hash)
            principal = entry[0]
        elif (self._unknown.get(key_hash) or 0.0) >= now:
            principal = None
        else:
            principal = await self._look_up(key_hash, now)
        if principal is None or (principal.expires_at is not None and principal.expires_at <= time.time()):
            raise GatewayError(401, AUTHENTICATION, "Invalid, revoked or expired API key.", code="invalid_api_key")
        return principal

    async def _look_up(self, key_hash: str, now: float) -> Principal | None:
        generation = self._generation
        if self._lookup is not None:
            principal = await self._lookup(key_hash)
        else:
            principal = await sync_to_async(lookup_key, thread_sensitive=True)(key_hash)
        if generation != self._generation:  # a change landed mid-lookup: this answer may be stale
            return principal
        if principal is None:
            self._known.pop(key_hash, None)
            _remember(self._unknown, key_hash, now + min(NEGATIVE_TTL, settings.AUTH_CACHE_TTL), self._max_unknown)
        else:
            self._unknown.pop(key_hash, None)
            _remember(self._known, key_hash, (principal, now + settings.AUTH_CACHE_TTL), self._max_known)
        return principal


def _remember(lru: OrderedDict, key: str, value, limit: int) -> None:
    lru[key] = value
    lru.move_to_end(key)
    if len(lru) > limit:
        lru.popitem(last=False)  # the least recently used
