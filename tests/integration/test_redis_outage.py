"""The gateway with Redis gone (a real client pointed at a closed port): it keeps serving, spools usage
events locally, says so in /health/ready, and the spool is replayed into the real stream afterwards."""

import socket
import time

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from accounting.usage import spool

HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture
def redis_down(gateway):
    from gomodel.gateway.runtime import _runtimes

    assert httpx.get(f"{gateway}/health").status_code == 200
    runtimes = [runtime for loop, runtime in list(_runtimes.items()) if loop.is_running()]
    assert runtimes
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    saved = [runtime.redis for runtime in runtimes]
    for runtime in runtimes:
        runtime.redis = aioredis.from_url(f"redis://127.0.0.1:{port}/15", socket_timeout=2.0,
                                          socket_connect_timeout=2.0)
    yield
    for runtime, client in zip(runtimes, saved):
        runtime.redis = client


def wait_for_spool(count, timeout=3.0):
    deadline = time.monotonic() + timeout
    while spool.spool_size() < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return spool.spool_size()


def test_requests_are_served_and_usage_is_spooled_then_replayed(redis_down, gateway, provider, tenant_key,
                                                                 redis_sync, settings):
    ids = []
    for stream in (False, True):
        response = httpx.post(f"{gateway}/v1/chat/completions",
                              json={"model": "gpt-4o-mini", "messages": HELLO, "stream": stream},
                              headers={"Authorization": f"Bearer {tenant_key[2]}"})
        assert response.status_code == 200, response.text
        ids.append(response.headers["x-request-id"])
    assert response.text.rstrip().endswith("data: [DONE]")

    assert wait_for_spool(2) == 2
    assert redis_sync.xlen(settings.USAGE_STREAM) == 0
    spooled = [orjson.loads(line) for line in settings.USAGE_SPOOL_PATH.read_bytes().splitlines()]
    assert [e["request_id"] for e in spooled] == ids
    assert [(e["status"], e["stream"], e["usage_source"]) for e in spooled] == [(200, False, "reported"),
                                                                               (200, True, "reported")]

    # Redis is back (as seen by a real client): the spool goes into the stream, in order.
    assert spool.replay_spool(redis_sync) == 2
    replayed = [orjson.loads(f[b"e"]) for _, f in redis_sync.xrange(settings.USAGE_STREAM)]
    assert [e["request_id"] for e in replayed] == ids
    assert spool.spool_size() == 0


def test_ready_is_503_when_redis_is_down(redis_down, gateway):
    response = httpx.get(f"{gateway}/health/ready")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable",
                               "checks": {"database": True, "redis": False, "provider_keys": True}}
