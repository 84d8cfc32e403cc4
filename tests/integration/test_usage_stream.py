"""accounting.usage against a real Redis: events go to the stream; when Redis is unreachable they are
spooled to a local file, and replay_spool moves them into the stream once it answers again."""

import asyncio
import socket

import pytest
import redis
import redis.asyncio as aioredis

from accounting import usage, usage_event
from accounting.usage_event import StreamEvent


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def event(n: int) -> StreamEvent:
    return StreamEvent(request_id=f"req_test_{n}", ts=1_700_000_000.0 + n, tenant="acme", provider="openai",
                       model="gpt-4o-mini", status=200, prompt_tokens=11, completion_tokens=n, total_tokens=11 + n,
                       usage_source="reported")


def stream_events(redis_sync, settings) -> list[StreamEvent]:
    return [usage_event.decode(fields[b"e"]) for _, fields in redis_sync.xrange(settings.USAGE_STREAM)]


def emit_with(client_factory, events):
    async def run():
        client = client_factory()
        try:
            writer = usage.UsageWriter(lambda: client)
            for e in events:
                await writer.emit(e)
        finally:
            await client.aclose()

    asyncio.run(run())


def real_redis(settings):
    return lambda: aioredis.from_url(settings.REDIS_URL)


def dead_redis():
    """A client built like the gateway's (gomodel.gateway.runtime), for a Redis that is not there."""
    url = f"redis://127.0.0.1:{closed_port()}/15"
    return lambda: aioredis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0, health_check_interval=30)


def test_emit_appends_to_the_stream(redis_sync, settings):
    emit_with(real_redis(settings), [event(1), event(2)])
    assert stream_events(redis_sync, settings) == [event(1), event(2)]
    assert not settings.USAGE_SPOOL_PATH.exists()
    assert usage.spool_size() == 0


def test_unreachable_redis_spools_and_replay_moves_events_into_the_stream(redis_sync, settings):
    emit_with(dead_redis(), [event(1), event(2), event(3)])  # never raises

    assert stream_events(redis_sync, settings) == []
    assert usage.spool_size() == 3
    lines = settings.USAGE_SPOOL_PATH.read_bytes().splitlines()
    assert [usage_event.decode(line) for line in lines] == [event(1), event(2), event(3)]

    assert usage.replay_spool(redis_sync) == 3
    assert stream_events(redis_sync, settings) == [event(1), event(2), event(3)]
    assert usage.spool_size() == 0 and usage.spool_bytes() == 0 and not settings.USAGE_SPOOL_PATH.exists()

    assert usage.replay_spool(redis_sync) == 0  # nothing twice
    assert len(stream_events(redis_sync, settings)) == 3


def test_events_spooled_later_are_replayed_after_the_earlier_ones(redis_sync, settings):
    emit_with(dead_redis(), [event(1)])
    usage.replay_spool(redis_sync)
    emit_with(real_redis(settings), [event(2)])
    emit_with(dead_redis(), [event(3)])
    assert usage.replay_spool(redis_sync) == 1
    assert [e.request_id for e in stream_events(redis_sync, settings)] == ["req_test_1", "req_test_2",
                                                                               "req_test_3"]


def test_replay_while_redis_is_still_down_keeps_the_spool(redis_sync, settings):
    emit_with(dead_redis(), [event(1), event(2)])
    down = redis.Redis.from_url(f"redis://127.0.0.1:{closed_port()}/15", socket_timeout=2.0)
    with pytest.raises(redis.RedisError):
        usage.replay_spool(down)
    assert usage.spool_size() == 2
    assert usage.replay_spool(redis_sync) == 2
    assert len(stream_events(redis_sync, settings)) == 2


def test_replay_without_a_spool_file(redis_sync, settings):
    assert not settings.USAGE_SPOOL_PATH.exists()
    assert usage.replay_spool(redis_sync) == 0
    assert stream_events(redis_sync, settings) == []


def test_the_gateways_replay_task_uses_settings(redis_sync, settings):
    """runtime._replay_spool (what the gateway runs every few seconds) drains the spool with its own client."""
    from gomodel.gateway.runtime import _replay_spool

    emit_with(dead_redis(), [event(5)])
    _replay_spool()
    assert stream_events(redis_sync, settings) == [event(5)]
    assert usage.spool_size() == 0
