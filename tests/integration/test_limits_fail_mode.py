"""When Redis does not answer: LIMITS_FAIL_MODE=open serves (logging once a minute, counting in a metric),
closed answers 503; a key without limits never asks Redis at all."""

import asyncio
import logging
import socket

import pytest
import redis.asyncio as aioredis

from gomodel.gateway import limits
from gomodel.gateway.auth import Principal
from gomodel.gateway.errors import GatewayError


class FakeRequest:
    def __init__(self, request_id="req_test"):
        self.request_id = request_id
        self.extra_headers = ()


LIMITED = Principal(tenant_id=1, tenant_slug="acme", key_id=1, key_prefix="p", rpm_limit=5, concurrency_limit=2)
UNLIMITED = Principal(tenant_id=1, tenant_slug="acme", key_id=2, key_prefix="q")


def dead_redis():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return aioredis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.2)


def admit_many(principal, n=3):
    async def run():
        client = dead_redis()
        limiter = limits.Limiter(client)
        try:
            return [await limiter.admit(FakeRequest(f"req_{i}"), principal, 10) for i in range(n)]
        finally:
            await client.aclose()

    return asyncio.run(run())


def test_open_serves_logs_once_and_counts(settings, caplog):
    settings.LIMITS_FAIL_MODE = "open"
    before = limits.REDIS_ERRORS._value.get()
    with caplog.at_level(logging.WARNING, logger="gomodel.gateway.limits"):
        assert admit_many(LIMITED) == [None, None, None]  # served, without a claim to settle
    assert len([r for r in caplog.records if "Redis did not answer" in r.getMessage()]) == 1
    assert limits.REDIS_ERRORS._value.get() > before


def test_closed_refuses_with_503(settings):
    settings.LIMITS_FAIL_MODE = "closed"
    with pytest.raises(GatewayError) as raised:
        admit_many(LIMITED, 1)
    error = raised.value
    assert (error.status, error.type, error.code) == (503, "rate_limit_error", "rate_limits_unavailable")
    assert (b"retry-after", b"1") in error.headers


def test_a_key_without_limits_asks_nothing(settings):
    settings.LIMITS_FAIL_MODE = "closed"
    before = limits.REDIS_ERRORS._value.get()
    assert admit_many(UNLIMITED) == [None, None, None]
    assert limits.REDIS_ERRORS._value.get() == before


def test_the_redis_call_is_bounded_by_the_timeout(settings):
    """A Redis that accepts the connection but never answers costs at most LIMITS_REDIS_TIMEOUT."""
    settings.LIMITS_FAIL_MODE = "open"
    settings.LIMITS_REDIS_TIMEOUT = 0.2
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]

    async def run():
        client = aioredis.Redis(host="127.0.0.1", port=port)
        limiter = limits.Limiter(client)
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            assert await limiter.admit(FakeRequest(), LIMITED, 10) is None
        finally:
            await client.aclose()
        return loop.time() - started

    try:
        assert asyncio.run(run()) < 1.0
    finally:
        listener.close()
