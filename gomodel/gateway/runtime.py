"""Per-process (per event loop) state of the gateway: the upstream client, the Redis client, the key
cache and the model registry, plus the background tasks that keep them fresh."""

import asyncio
import logging
import weakref

import redis.asyncio as aioredis
from django.conf import settings

from accounting.usage import spool, writer

from . import metrics, tracing
from .auth import KeyCache
from .key_pool import MESSAGE_PREFIX, KeyStates
from .limits import Limiter
from .registry import ModelRegistry
from .resilience import CircuitBreaker
from .response_cache import ResponseCache
from .upstream_client import new_client

log = logging.getLogger(__name__)
_runtimes: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Runtime]" = weakref.WeakKeyDictionary()


class Runtime:
    def __init__(self):
        self.http = new_client()
        # A blocking pool waits for a free connection instead of failing with "Too many connections";
        # no socket_timeout (a timer per reply read, ~4 µs each: a usage batch reads one per command): callers
        # bound their own waits. redis-py 8 defaults it to 5 s, hence None said explicitly.
        pool = aioredis.BlockingConnectionPool.from_url(settings.REDIS_URL, max_connections=64, timeout=5.0,
                                                        socket_connect_timeout=2.0, socket_timeout=None,
                                                        health_check_interval=30)
        self.redis = aioredis.Redis(connection_pool=pool)
        self.keys = KeyCache()
        self.registry = ModelRegistry(self.http)
        self.usage = writer.UsageWriter(lambda: self.redis)
        self.breaker = CircuitBreaker()
        self.key_states = KeyStates(self.redis)  # provider pool keys cooling (429) or rejected (401/403)
        self.limits = Limiter(self.redis)
        self.cache = ResponseCache.for_runtime(self.redis)
        self.semantic = None  # semantic_cache.lookup.SemanticCache, made by the first semantic lookup or at start-up
        self.prices = None  # accounting.prices.PriceBook, loaded by the first budgeted request
        self._tasks: list[asyncio.Task] = []

    def start_background(self):
        self._tasks = [
            asyncio.ensure_future(self._listen_invalidations()),
            asyncio.ensure_future(self._refresh_models_periodically()),
            asyncio.ensure_future(self._replay_spool_periodically()),
            asyncio.ensure_future(self.limits.heartbeat_forever()),
        ]

    def invalidate(self, what: str):
        if what.startswith(MESSAGE_PREFIX):
            self.key_states.heard(what)
            return
        # Plain dict/set clears, not KeyStates methods: a warm call's walk (tests/e2e/test_request_walk.py) stays
        # out of key_pool.py when an invalidation lands during it.
        if what == "all":
            self.key_states.cooling.clear()  # what is still cooling is read back from Redis (the listener)
        if what in ("providers", "all"):
            self.key_states.out.clear()  # the registry reloads its pools without the rejected keys
        if what in ("keys", "all"):
            self.keys.clear()
        if what in ("providers", "all"):
            self.registry.invalidate()
        if what in ("prices", "all"):
            self.prices = None

    async def _listen_invalidations(self):
        while True:
            try:
                pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(settings.INVALIDATION_CHANNEL)
                # Anything may have changed while we were not listening.
                self.invalidate("all")
                await self._load_cooldowns()
                async for message in pubsub.listen():
                    if message and message.get("type") == "message":
                        self.invalidate(message["data"].decode())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("cache invalidation listener lost Redis (%s); retrying", exc)
                await asyncio.sleep(1.0)

    async def _load_cooldowns(self):
        """The pool keys' cool-downs under way (what this process missed while it was not subscribed): one SCAN,
        and key_pool.py only when there are some."""
        names = [name async for name in self.redis.scan_iter(match=settings.KEY_COOLDOWN_PREFIX + ":*", count=500)]
        if names:
            await self.key_states.load(names)

    async def _refresh_models_periodically(self):
        while True:
            await asyncio.sleep(settings.MODEL_REFRESH_INTERVAL)
            try:
                if self.registry.loaded:
                    await self.registry.refresh()
            except Exception:
                log.exception("model registry refresh failed")

    async def _replay_spool_periodically(self):
        while True:
            await asyncio.sleep(5.0)
            if spool.spool_bytes():
                try:
                    await asyncio.to_thread(_replay_spool)
                except Exception as exc:
                    log.warning("usage spool still waiting for Redis (%s events): %s", spool.spool_size(), exc)

    async def close(self):
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.key_states.settled()
        await self.limits.drain()  # free the slots of requests that just ended before Redis goes
        metrics.ACCESS.close()
        if tracing.started():  # the spans still queued go to the collector (a thread: the exporter blocks)
            await asyncio.to_thread(tracing.shutdown)
        await self.usage.close()  # every queued usage event into Redis (or the spool) before it goes
        await self.cache.close()  # answers still being stored
        if self.semantic is not None:
            await self.semantic.close()
        await self.http.aclose()
        await self.redis.aclose()


def _replay_spool():
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5.0)
    try:
        spool.replay_spool(client)
    finally:
        client.close()


def get_runtime() -> Runtime:
    loop = asyncio.get_running_loop()
    runtime = _runtimes.get(loop)
    if runtime is None:
        runtime = _runtimes[loop] = Runtime()
        runtime.start_background()
    return runtime


def invalidate_local(what: str):
    """Clear this process's caches at once (the Redis message reaches the other processes)."""
    for runtime in list(_runtimes.values()):
        runtime.invalidate(what)
