"""The usage seam: one event per /v1 request, appended to a Redis Stream off the response path. The
gateway's UsageWriter queues it and a flusher task sends the queue in batches, one pipeline each: the
request never waits on Redis (unless USAGE_WRITE_QUEUE_MAX events already wait: backpressure).

When Redis cannot take a batch, its events go to the local spool (accounting/usage/spool.py), which
`replay_spool` moves into the stream once Redis answers again.
"""

import asyncio
import time

from django.conf import settings

from .events import StreamEvent, encode
from .spool import spool_all as _spool_all
from .stream import add_pending


class UsageWriter:
    """The gateway's writer (one per event loop): queued events go to Redis in batches, one pipelined
    MULTI (XADDs and budget counters) per batch, sent by one long-lived flusher task when USAGE_WRITE_BATCH
    events wait or USAGE_WRITE_INTERVAL seconds after the first of them. bench/ measured ~75 µs CPU per
    awaited single XADD against ~10 µs batched; a batch across ticks also spares each request a future.

    `emit` queues the event and returns at once, so a request never waits on Redis, and one cancelled
    afterwards (shutdown, hang-up) still has its event written. Backpressure: past USAGE_WRITE_QUEUE_MAX
    waiting events (a write in flight on a slow Redis) `emit` hands back a future to await for room.
    A batch Redis does not take in `timeout` seconds goes to the spool. `flushed()` waits until what was
    emitted is in Redis or the spool; `close()` writes everything queued (runtime shutdown). Never raises.
    """

    def __init__(self, get_redis, timeout: float = 5.0, batch_max: int | None = None,
                 interval: float | None = None, queue_max: int | None = None):
        self._get_redis = get_redis  # looked up per batch: the client may be replaced (tests, reconnects)
        self._timeout = timeout
        self._batch_max = batch_max or settings.USAGE_WRITE_BATCH
        self._interval = settings.USAGE_WRITE_INTERVAL if interval is None else interval
        self._queue_max = queue_max or settings.USAGE_WRITE_QUEUE_MAX
        self._queue: list[tuple[bytes, str | None, list, int]] = []
        self._first_at = 0.0  # time.monotonic() when the oldest queued event was queued
        self._flusher: asyncio.Task | None = None  # a strong reference: the loop keeps only weak ones to tasks
        self._wake: asyncio.Future | None = None  # what the flusher sleeps on
        self._room: list[asyncio.Future] = []  # emitters held back by a full queue
        self._waiting: list[tuple[int, asyncio.Future]] = []  # flushed() callers, by the count they wait for
        self._emitted = self._written = 0  # events queued, and handled (in Redis or the spool), so far
        self._closing = self._closed = False
        self.batches = 0  # pipelines sent (tests count them)

    def emit(self, event: StreamEvent) -> asyncio.Future | None:
        """Queue the event; None, or (queue full) a future to await before going on. Cancelling that
        wait loses nothing: the event is queued already."""
        item = (encode(event), event.request_id, event.budget_keys, event.cost_e10)
        if self._closed:  # a request that ended after close() (cancelled at shutdown): straight to the spool
            _spool_all([item], "the gateway is shutting down")
            return None
        queue = self._queue
        queue.append(item)
        self._emitted += 1
        size = len(queue)
        if size == 1:
            self._first_at = time.monotonic()
            if self._flusher is None:
                self._flusher = asyncio.get_running_loop().create_task(self._run())
            self._wakeup()
        elif size >= self._batch_max:
            self._wakeup()
        if size > self._queue_max:
            room = asyncio.get_running_loop().create_future()
            self._room.append(room)
            return room
        return None

    async def flushed(self) -> None:
        """Wait until every event emitted so far is in Redis or the spool (the batch is not hurried)."""
        target = self._emitted
        if self._written < target:
            done = asyncio.get_running_loop().create_future()
            self._waiting.append((target, done))
            await done

    async def close(self) -> None:
        """Write everything queued now, each batch bounded by the timeout (then spooled); later events
        go straight to the spool. Runtime shutdown, before its Redis client closes."""
        self._closing = True
        if self._flusher is None:
            self._closed = True
            return
        self._wakeup()
        await self._flusher  # cancelled (shutdown cut short), it spools what it holds

    def _wakeup(self):
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def _run(self):
        """The flusher: one batch in flight at a time; what is queued meanwhile makes the next one."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not self._queue:
                    if self._closing:  # closed (finally) in the tick that saw the queue empty: nothing slips in
                        return
                    await self._sleep(loop, None)
                    continue
                delay = self._first_at + self._interval - time.monotonic()
                if delay > 0 and len(self._queue) < self._batch_max and not self._closing:
                    await self._sleep(loop, delay)
                batch, self._queue = self._queue, []
                _resolve(self._room)
                self._room = []
                await self._write(batch)
        finally:  # done, or cancelled (the loop is going away): later events go straight to the spool
            self._closed = True
            if self._queue:
                _spool_all(self._queue, "the usage writer was cancelled")
                self._written += len(self._queue)
                self._queue = []
                self._wake_flushed()
            _resolve(self._room)
            self._room, self._flusher = [], None

    async def _sleep(self, loop, delay: float | None):
        """Until `_wakeup` (first event, full batch, close) or `delay` seconds."""
        self._wake = wake = loop.create_future()
        timer = loop.call_later(delay, _resolve, [wake]) if delay is not None else None
        try:
            await wake
        finally:
            self._wake = None
            if timer is not None:
                timer.cancel()

    async def _write(self, batch: list):
        self.batches += 1
        try:
            async with asyncio.timeout(self._timeout):
                # MULTI: an event's cost is in its budget counters' `pending` exactly while the event
                # is in the stream (accounting/budgets/).
                pipe = self._get_redis().pipeline(transaction=True)
                for payload, request_id, names, cost_e10 in batch:
                    pipe.xadd(settings.USAGE_STREAM, {"e": payload})
                    if names:  # a budgeted event: its cost into the counters, its reservation out
                        add_pending(pipe, names, cost_e10, request_id)
                await pipe.execute()
        except Exception as exc:  # Redis down, timeout, OOM: keep the events, say so
            _spool_all(batch, exc)
        except BaseException:  # cancelled: keep them too (Redis may have them: the drain dedups on request_id)
            _spool_all(batch, "the usage writer was cancelled")
            raise
        finally:
            self._written += len(batch)
            self._wake_flushed()

    def _wake_flushed(self):
        written = self._written
        if self._waiting:
            _resolve([done for target, done in self._waiting if target <= written])
            self._waiting = [(target, done) for target, done in self._waiting if target > written]


def _resolve(futures) -> None:
    for future in futures:
        if not future.done():  # a waiter cancelled meanwhile
            future.set_result(None)
