"""The usage stream in Redis: the client the worker side uses, the consumer group, the drain lock, and
what goes into one MULTI with an event's XADD (its budget counters' `pending` part)."""

import logging
import os
import socket

import redis
from django.conf import settings
from redis.exceptions import LockError
from redis.lock import Lock

log = logging.getLogger(__name__)


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


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=10.0, socket_connect_timeout=5.0)


def drain_lock(client: redis.Redis, ttl_seconds: float) -> Lock:
    """One drain at a time across workers: `acquire()` answers at once (False: another drain runs)."""
    return client.lock(settings.USAGE_STREAM + ":drain-lock", timeout=ttl_seconds, blocking=False,
                       thread_local=False)


def still_held(lock: Lock) -> bool:
    """Extend the lock by its whole timeout again; False when it expired (and may be another's now)."""
    try:
        lock.reacquire()
        return True
    except LockError:
        return False


def release_drain_lock(lock: Lock) -> None:
    """Release it if still ours; an expired lock (maybe another's now) is left alone."""
    try:
        lock.release()
    except LockError:  # expired: nothing to release
        pass
    except redis.RedisError as exc:  # it expires on its own
        log.warning("could not release the usage drain lock (%s)", exc)


def ensure_group(client: redis.Redis) -> None:
    try:
        client.xgroup_create(settings.USAGE_STREAM, settings.USAGE_CONSUMER_GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
