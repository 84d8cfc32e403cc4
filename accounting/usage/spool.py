"""The local spool of usage events Redis could not take: an append-only file, replayed into the
stream once Redis answers again (`replay_spool`). The spool is capped (USAGE_SPOOL_MAX_BYTES): beyond
it an event is dropped, never silently (an error log line and the `gomodel_usage_events_dropped`
counter). The drain keys rows on `request_id`, so an event replayed twice is still counted once.
"""

import fcntl
import logging
import os
import time

from django.conf import settings

from . import metrics as usage_metrics
from .events import decode
from .stream import add_pending

log = logging.getLogger(__name__)
_spool_log = {"at": 0.0, "since": 0}
_drop_log = {"at": 0.0, "since": 0}
SPOOL_LOG_INTERVAL = 5.0
REPLAY_BATCH = 5000  # spooled events per Redis pipeline when replaying


def spool_all(batch: list, exc) -> None:
    """Spool a writer's batch of (payload, request id, budget counters, cost) that Redis did not take."""
    for payload, request_id, _, _ in batch:
        if spool(payload, request_id):
            usage_metrics.SPOOLED.inc()
            _log_spooled(request_id, exc)



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
