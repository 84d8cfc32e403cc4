"""The usage seam: one event per /v1 request, appended to a Redis Stream off the response path. The
gateway's UsageWriter queues it and a flusher task sends the queue in batches, one pipeline each: the
request never waits on Redis (unless USAGE_WRITE_QUEUE_MAX events already wait: backpressure).

When Redis cannot take an event, it goes to an append-only spool file (and the log says so);
`replay_spool` moves spooled events into the stream once Redis answers again. The spool is capped
(USAGE_SPOOL_MAX_BYTES): beyond it an event is dropped, never silently (an error log line and the
`gomodel_usage_events_dropped` counter). The drain keys rows
on `request_id`, so an event replayed twice is still counted once.
"""

import asyncio
import fcntl
import logging
import os
import time

from django.conf import settings

from . import usage_metrics
from .usage_event import StreamEvent, decode, encode

log = logging.getLogger(__name__)


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
                # is in the stream (accounting/budgets.py).
                pipe = self._get_redis().pipeline(transaction=True)
                for payload, request_id, names, cost_e10 in batch:
                    pipe.xadd(settings.USAGE_STREAM, {"e": payload})
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


def _spool_all(batch: list, exc) -> None:
    for payload, request_id, _, _ in batch:
        if spool(payload, request_id):
            usage_metrics.SPOOLED.inc()
            _log_spooled(request_id, exc)


def add_pending(pipe, names: list, cost_e10: int, request_id: str | None = None) -> None:
    """The event's cost into each of its budget counters' `pending` part, and its stream's running
    estimate out of their in-flight part (same MULTI as its XADD; gomodel/gateway/budgets.py)."""
    for name in names:
        if isinstance(name, str):
            if request_id:
                pipe.hdel(name + ":inflight", request_id)
                pipe.zrem(name + ":inflight-exp", request_id)
            if cost_e10 and isinstance(cost_e10, int):
                pipe.incrby(name + ":pending", cost_e10)
                pipe.expire(name + ":pending", PENDING_TTL)


PENDING_TTL = 60 * 24 * 3600  # a counter of a finished period goes after 60 days (an undrained event keeps it alive)
_spool_log = {"at": 0.0, "since": 0}
_drop_log = {"at": 0.0, "since": 0}
SPOOL_LOG_INTERVAL = 5.0
REPLAY_BATCH = 5000  # spooled events per Redis pipeline when replaying


def _log_spooled(request_id, exc) -> None:
    """One warning per SPOOL_LOG_INTERVAL with the spool's size, not one per event in an outage."""
    _spool_log["since"] += 1
    now = time.monotonic()
    if now - _spool_log["at"] < SPOOL_LOG_INTERVAL:
        return
    log.warning("usage events spooled to %s since the last report: %d (latest %s); spool size %d events, %d bytes; "
                "Redis unavailable (%s)", settings.USAGE_SPOOL_PATH, _spool_log["since"], request_id, spool_size(),
                spool_bytes(), exc)
    _spool_log["at"], _spool_log["since"] = now, 0


def _log_dropped(request_id) -> None:
    _drop_log["since"] += 1
    now = time.monotonic()
    if now - _drop_log["at"] < SPOOL_LOG_INTERVAL:
        return
    log.error("usage spool %s is full (USAGE_SPOOL_MAX_BYTES=%d) and Redis is unavailable: %d usage events DROPPED "
              "since the last report (latest %s); they will not be billed", settings.USAGE_SPOOL_PATH,
              settings.USAGE_SPOOL_MAX_BYTES, _drop_log["since"], request_id)
    _drop_log["at"], _drop_log["since"] = now, 0


# The spool is three files side by side: the spool itself (appended to), the one being replayed (the
# spool moved aside, so that appends never wait on Redis), and an 8-byte count of the events in both,
# kept so that its size is O(1) to read (a /metrics scrape used to read the whole spool).

def _replaying_path():
    path = settings.USAGE_SPOOL_PATH
    return path.with_name(path.name + ".replaying")


def _count_path():
    path = settings.USAGE_SPOOL_PATH
    return path.with_name(path.name + ".count")


def _add_to_count(delta: int) -> None:
    fd = os.open(_count_path(), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        raw = os.pread(fd, 8, 0)
        count = max(0, (int.from_bytes(raw, "big", signed=True) if len(raw) == 8 else 0) + delta)
        os.pwrite(fd, count.to_bytes(8, "big", signed=True), 0)
    finally:
        os.close(fd)


def spool(payload: bytes, request_id: str | None = None) -> bool:
    """Append one event to the spool; False (and said loudly) when the spool is full."""
    path = settings.USAGE_SPOOL_PATH
    if spool_bytes() + len(payload) + 1 > settings.USAGE_SPOOL_MAX_BYTES:
        usage_metrics.DROPPED.inc()
        _log_dropped(request_id)
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(path).st_ino
            except FileNotFoundError:
                current = None
            if current != os.fstat(fd).st_ino:
                continue  # a replay moved the file away between our open and our lock: open the new one
            os.write(fd, payload + b"\n")
            _add_to_count(1)  # still under the lock: a replay that has read this line has counted it too
        finally:
            os.close(fd)  # closing releases the lock
        break
    return True


def spool_bytes() -> int:
    """Bytes waiting in the spool (both files); O(1)."""
    total = 0
    for path in (settings.USAGE_SPOOL_PATH, _replaying_path()):
        try:
            total += os.stat(path).st_size
        except FileNotFoundError:
            pass
    return total


def spool_size() -> int:
    """How many events wait in the spool; O(1) (an 8-byte counter beside it)."""
    if not spool_bytes():
        return 0
    try:
        with open(_count_path(), "rb") as f:
            raw = f.read(8)
    except FileNotFoundError:  # a spool left by a version without the count: count it once
        lines = 0
        for spooled in (settings.USAGE_SPOOL_PATH, _replaying_path()):
            try:
                with open(spooled, "rb") as f:
                    lines += sum(1 for line in f if line.strip())
            except FileNotFoundError:
                pass
        _add_to_count(lines)
        return lines
    return max(0, int.from_bytes(raw, "big", signed=True)) if len(raw) == 8 else 0


def replay_spool(redis_sync) -> int:
    """Move every spooled event into the stream (sync client); returns how many moved.

    The spool is renamed aside first, so writers go on appending to a new file and never wait on
    Redis; the moved file is deleted only after Redis took all of it (if Redis fails, it stays and is
    replayed first next time, keeping the order). One replay at a time across processes; an event
    replayed twice is still counted once (the drain keys rows on request_id).
    """
    path = settings.USAGE_SPOOL_PATH
    moved = _replaying_path()
    if not path.exists() and not moved.exists():
        return 0
    lock = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # another process is replaying
        total = 0
        for _ in range(2):  # what a failed replay left aside first (it is older), then the spool
            if not moved.exists():
                try:
                    os.rename(path, moved)
                except FileNotFoundError:
                    break
            total += _replay_file(redis_sync, moved)
        if total:
            log.info("replayed %d spooled usage events into %s", total, settings.USAGE_STREAM)
        return total
    finally:
        os.close(lock)


def _replay_file(redis_sync, moved) -> int:
    fd = os.open(moved, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a barrier: an append that began before the rename has finished
        fcntl.flock(fd, fcntl.LOCK_UN)
        replayed = 0
        with os.fdopen(os.dup(fd), "rb") as f:
            batch = []
            for line in f:
                line = line.strip()
                if line:
                    batch.append(line)
                if len(batch) >= REPLAY_BATCH:
                    replayed += _xadd_all(redis_sync, batch)
                    batch = []
            replayed += _xadd_all(redis_sync, batch)
    finally:
        os.close(fd)
    os.unlink(moved)
    _add_to_count(-replayed)
    return replayed


def _xadd_all(redis_sync, lines: list[bytes]) -> int:
    if lines:
        pipe = redis_sync.pipeline(transaction=True)  # each XADD with its budget counters
        for line in lines:
            pipe.xadd(settings.USAGE_STREAM, {"e": line})
            try:
                event = decode(line)
                add_pending(pipe, event.budget_keys, event.cost_e10, event.request_id)
            except ValueError:
                pass  # the drain sends an unreadable line to the dead-letter list
        pipe.execute()
    return len(lines)
