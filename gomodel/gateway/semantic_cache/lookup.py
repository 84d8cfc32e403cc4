"""A call's semantic lookup (after the exact cache missed) and the store of its answer.

The embedding and the search are bounded together by SEMANTIC_CACHE_TIMEOUT; the search and every store run in
the default executor's threads (a database call), never on the event loop. A lookup that fails or times out is a
miss: the cache never makes a call fail. What is stored is what the exact cache decided to store (response_cache.
CallCache._store calls `remember`), so only successful complete answers, with the policy's TTL."""

import asyncio
import logging
import time

from django.conf import settings
from prometheus_client import Counter

from ..response_cache import CachePolicy, Entry, _entry
from . import text
from .backends import open_store
from .embedder import embed
from .store import VectorStore

log = logging.getLogger(__name__)
HIT = b"hit-semantic"
PURGE_EVERY = 256
LOOKUPS = Counter("gomodel_semantic_cache_lookups", "Semantic lookups after an exact miss, by result "
                  "(hit, miss, skipped: no text to embed, error: embedding or search failed or timed out).",
                  ["endpoint", "result"])


class SemanticCache:
    """Per runtime: the vector store, opened once (in a thread)."""

    def __init__(self) -> None:
        self.store: VectorStore | None = None
        self._opening: asyncio.Lock | None = None
        self._tasks: set[asyncio.Future] = set()
        self._adds = 0

    async def open(self) -> VectorStore:
        if self.store is None:
            if self._opening is None:
                self._opening = asyncio.Lock()
            async with self._opening:
                if self.store is None:
                    self.store = await asyncio.to_thread(open_store)
        return self.store

    async def lookup(self, call, req, principal, protocol, target, model: str) -> Entry | None:
        """The stored answer of a similar request of this tenant and scope, or None. Sets up `call.semantic`
        (the call's CallCache) so that the answer this call stores is kept for the next similar request."""
        cache = call.cache
        policy: CachePolicy = principal.cache
        embed_model = settings.SEMANTIC_CACHE_EMBED_MODEL
        parts = text.split(protocol.endpoint, protocol.body, settings.SEMANTIC_CACHE_EMBED_SYSTEM)
        if parts is None or not parts[0].strip() or len(parts[0]) > settings.SEMANTIC_CACHE_MAX_CHARS:
            LOOKUPS.labels(protocol.endpoint, "skipped").inc()
            return None
        said, rest = parts
        scope = text.scope(protocol.endpoint, principal.tenant_id, target, model, embed_model, rest, req.headers)
        try:
            async with asyncio.timeout(settings.SEMANTIC_CACHE_TIMEOUT):
                vector = await embed(call.runtime, req, principal, embed_model, said)
                if vector is None:
                    LOOKUPS.labels(protocol.endpoint, "error").inc()
                    return None
                store = await self.open()
                found = None
                if cache.read:
                    found = await asyncio.to_thread(store.nearest, principal.tenant_id, scope, vector,
                                                    policy.similarity, time.time())
        except Exception as exc:  # a cache that does not answer in time (TimeoutError) is a miss, never an error
            log.warning("semantic cache lookup failed (%s); treated as a miss", repr(exc))
            LOOKUPS.labels(protocol.endpoint, "error").inc()
            return None
        if found is not None:
            entry = _entry(found[1])
            if entry is not None:
                LOOKUPS.labels(protocol.endpoint, "hit").inc()
                return entry
        LOOKUPS.labels(protocol.endpoint, "miss").inc()
        if cache.write:
            tenant_id = principal.tenant_id
            cache.semantic = lambda raw, ttl: self._remember(store, tenant_id, scope, vector, raw, ttl)
        return None

    def _remember(self, store: VectorStore, tenant_id: int, scope: str, vector: list[float], raw: bytes,
                  ttl: int) -> None:
        """Kept in a thread, after the exact entry: the answer is not held up by it."""
        if ttl <= 0:
            return
        self._adds += 1
        purge = self._adds % PURGE_EVERY == 0  # expired rows (never found) go now and then, not on every store
        task = asyncio.ensure_future(asyncio.to_thread(_add, store, purge, tenant_id, scope, vector, raw,
                                                       time.time() + ttl))
        self._tasks.add(task)
        task.add_done_callback(self._stored)

    def _stored(self, task: asyncio.Future) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("semantic cache could not store an answer (%s)", task.exception())

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)
        if self.store is not None:
            await asyncio.to_thread(self.store.close)
            self.store = None


def _add(store: VectorStore, purge: bool, tenant_id: int, scope: str, vector: list[float], raw: bytes,
         expires_at: float) -> None:
    store.add(tenant_id, scope, vector, raw, expires_at)
    if purge:
        store.purge(time.time())


def semantic_of(runtime) -> SemanticCache:
    cache = getattr(runtime, "semantic", None)
    if cache is None:
        cache = runtime.semantic = SemanticCache()
    return cache


async def lookup(call, req, principal, protocol, target, model: str) -> Entry | None:
    return await semantic_of(call.runtime).lookup(call, req, principal, protocol, target, model)
