"""The live feed: usage events as requests finish, from the usage stream to every open dashboard.

    gateway ──XADD──▶ usage stream ──XREAD BLOCK (one tailer)──▶ channel layer group ──▶ each socket

The gateway's hot path does nothing more than it already does (the XADD of its usage event). While a
process has dashboard sockets open, it tries to become *the* tailer: a Redis lock (refreshed every
read) makes one tailer for all processes, which reads the stream with XREAD BLOCK — a plain reader,
not a consumer group member, so the drain's XREADGROUP/XACK/XDEL are untouched — and sends each
batch to one group of the Redis channel layer; Channels delivers it to the sockets of every process.
The tailer starts at the stream's last id (or where the previous tailer stopped, if it stopped a
moment ago), so a feed shows what finishes from then on.

Cost: computed here with the drain's price book (reloaded every PRICES_TTL seconds), i.e. the same
number the drain will store unless a price is edited in between; null when no price matches.
"""

import asyncio
import hashlib
import logging
import time
import weakref
from typing import cast

import redis.asyncio as aioredis
from channels.layers import BaseChannelLayer, get_channel_layer
from django.conf import settings
from redis.exceptions import LockError

from accounting.prices import money
from accounting.usage import events as usage_event

log = logging.getLogger(__name__)

BLOCK_MS = 1000  # one XREAD waits at most this long, then the lock is refreshed
LOCK_TTL_MS = 5000
LOCK_RETRY_SECONDS = 2.0  # a process whose sockets ride on another process's tailer checks this often
LAST_ID_TTL_SECONDS = 30  # a tailer taking over within this long resumes where the last one stopped
PRICES_TTL = 60.0
BATCH = 200


async def _still_held(lock) -> bool:
    """Extend the tailer lock by its whole timeout again; False when it expired (another process may tail now)."""
    try:
        await lock.reacquire()
        return True
    except LockError:
        return False


def group_name() -> str:
    """One group per usage stream (test runs sharing a Redis each have their own stream)."""
    return "gomodel-live-" + hashlib.sha1(settings.USAGE_STREAM.encode()).hexdigest()[:16]


def _lock_key() -> str:
    return settings.USAGE_STREAM + ":dashboard-tailer"


def _load_prices():
    """In a worker thread of its own (not the gateway's sync thread); its connection is closed after."""
    from django.db import connection

    from accounting.prices.book import PriceBook

    try:
        return PriceBook.load()
    finally:
        connection.close()


def feed_item(raw: bytes | None, prices) -> dict | None:
    """What a dashboard row shows of one stream entry (None for an unreadable entry)."""
    if raw is None:
        return None
    try:
        event = usage_event.decode(raw)
    except (ValueError, TypeError):
        return None
    cost = None
    if prices is not None:
        try:
            cost = prices.cost(event, event.created_at)
        except Exception:  # a price must never stop the feed
            log.exception("live feed: could not price %s", event.request_id)
    return {
        "request_id": event.request_id, "ts": event.ts, "tenant": event.tenant,
        "api_key": event.api_key_prefix, "model": event.model, "requested_model": event.requested_model,
        "provider": event.provider, "endpoint": event.endpoint, "status": event.status,
        "error_type": event.error_type or "", "stream": event.stream, "prompt_tokens": event.prompt_tokens,
        "completion_tokens": event.completion_tokens, "total_tokens": event.total_tokens,
        "cost_usd": money.usd(cost), "latency_ms": event.latency_ms, "ttft_ms": event.ttft_ms,
        "usage_source": event.usage_source,
    }


class Tailer:
    """One per process (per event loop), running only while the process has dashboard sockets open."""

    def __init__(self):
        self.watchers = 0
        self.task: asyncio.Task | None = None
        self.ready = asyncio.Event()  # set once events reach the group (here or through another process)
        self.prices = None
        self.prices_at = 0.0

    def watch(self) -> None:
        self.watchers += 1
        if self.task is None or self.task.done():
            self.ready = asyncio.Event()
            self.prices, self.prices_at = None, 0.0  # prices may have changed while no one watched
            self.task = asyncio.ensure_future(self._run())

    async def unwatch(self) -> None:
        self.watchers = max(0, self.watchers - 1)
        if self.watchers == 0 and self.task is not None:
            task, self.task = self.task, None
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def wait_ready(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self.ready.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def _run(self) -> None:
        client = aioredis.from_url(settings.REDIS_URL, socket_timeout=BLOCK_MS / 1000 + 5,
                                   socket_connect_timeout=2.0)
        lock = client.lock(_lock_key(), timeout=LOCK_TTL_MS / 1000, blocking=False, thread_local=False)
        try:
            while True:
                try:
                    if await lock.acquire():
                        await self._tail(client, lock)
                    else:
                        self.ready.set()  # another process tails; its batches reach our sockets
                        await asyncio.sleep(LOCK_RETRY_SECONDS)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("live feed: lost the usage stream (%s); retrying", exc)
                    await asyncio.sleep(1.0)
        finally:
            try:
                await asyncio.shield(self._close(client, lock))
            except asyncio.CancelledError:
                pass

    async def _close(self, client, lock) -> None:
        try:
            await lock.release()
        except Exception:  # not held, expired, or Redis gone: it expires on its own
            pass
        await client.aclose()

    async def _start_id(self, client) -> str:
        last = await client.get(_lock_key() + ":last")
        if last:
            return last.decode()
        try:
            info = await client.xinfo_stream(settings.USAGE_STREAM)
        except aioredis.ResponseError:  # no stream yet: everything it will hold is new
            return "0-0"
        last = info.get("last-generated-id") or info.get(b"last-generated-id")
        return last.decode() if isinstance(last, bytes) else str(last)

    async def _tail(self, client, lock) -> None:
        layer = cast(BaseChannelLayer, get_channel_layer())  # settings.CHANNEL_LAYERS always names one
        group = group_name()
        last = await self._start_id(client)
        await self._refresh_prices()
        self.ready.set()
        while await _still_held(lock):
            answer = await client.xread({settings.USAGE_STREAM: last}, count=BATCH, block=BLOCK_MS)
            if not answer:
                continue
            entries = answer[0][1]
            last = entries[-1][0].decode()
            await self._refresh_prices()
            items = [item for _, fields in entries if (item := feed_item((fields or {}).get(b"e"), self.prices))]
            await client.set(_lock_key() + ":last", last, ex=LAST_ID_TTL_SECONDS)
            if items:
                await layer.group_send(group, {"type": "live.events", "events": items})
        log.info("live feed: the tailer lock moved to another process")

    async def _refresh_prices(self) -> None:
        if time.monotonic() - self.prices_at < PRICES_TTL:
            return
        try:
            self.prices = await asyncio.to_thread(_load_prices)
        except Exception as exc:
            log.warning("live feed: could not load prices (%s); costs show as unknown", exc)
        self.prices_at = time.monotonic()


_tailers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Tailer]" = weakref.WeakKeyDictionary()


def tailer() -> Tailer:
    loop = asyncio.get_running_loop()
    found = _tailers.get(loop)
    if found is None:
        found = _tailers[loop] = Tailer()
    return found
