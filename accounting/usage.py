"""The usage seam: one event per /v1 request, appended to a Redis Stream off the response path.

When Redis cannot take an event, it goes to an append-only spool file (and the log says so);
`replay_spool` moves spooled events into the stream once Redis answers again. The drain keys rows
on `request_id`, so an event replayed twice is still counted once.
"""

import fcntl
import logging
import os

import orjson
from django.conf import settings

log = logging.getLogger(__name__)


def encode(event: dict) -> bytes:
    return orjson.dumps(event)


async def emit(redis, event: dict) -> None:
    """XADD the event; never raises (a failure spools it)."""
    payload = encode(event)
    try:
        await redis.xadd(settings.USAGE_STREAM, {"e": payload})
    except Exception as exc:  # Redis down, timeout, OOM: keep the event, say so
        spool(payload)
        log.warning("usage event %s spooled to %s: Redis unavailable (%s)", event.get("request_id"),
                    settings.USAGE_SPOOL_PATH, exc)


def spool(payload: bytes) -> None:
    path = settings.USAGE_SPOOL_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, payload + b"\n")
    finally:
        os.close(fd)  # closing releases the lock


def spool_size() -> int:
    """How many events wait in the spool."""
    try:
        with open(settings.USAGE_SPOOL_PATH, "rb") as f:
            return sum(1 for line in f if line.strip())
    except FileNotFoundError:
        return 0


def replay_spool(redis_sync) -> int:
    """Move every spooled event into the stream (sync client); returns how many moved.

    Lines go in one pipeline and the file is emptied only after Redis took them all, under the
    same lock that writers take, so an event is never dropped between the two.
    """
    path = settings.USAGE_SPOOL_PATH
    if not path.exists():
        return 0
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(os.dup(fd), "rb") as f:
            lines = [line.strip() for line in f if line.strip()]
        if not lines:
            return 0
        pipe = redis_sync.pipeline(transaction=False)
        for line in lines:
            pipe.xadd(settings.USAGE_STREAM, {"e": line})
        pipe.execute()
        os.ftruncate(fd, 0)
        log.info("replayed %d spooled usage events into %s", len(lines), settings.USAGE_STREAM)
        return len(lines)
    finally:
        os.close(fd)
