"""accounting.usage's writer and spool against a real Redis: events go to the stream in batches; when Redis is
unreachable they are spooled to a local file, and replay_spool moves them into the stream once it answers again."""

import asyncio
import socket
import time

import pytest
import redis
import redis.asyncio as aioredis

from accounting.usage import events as usage_event
from accounting.usage import spool
from accounting.usage.events import StreamEvent
from accounting.usage.writer import UsageWriter


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
            writer = UsageWriter(lambda: client)
            for e in events:
                assert writer.emit(e) is None  # queued; the request goes on
            await writer.flushed()
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
    assert spool.spool_size() == 0


def test_unreachable_redis_spools_and_replay_moves_events_into_the_stream(redis_sync, settings):
    emit_with(dead_redis(), [event(1), event(2), event(3)])  # never raises

    assert stream_events(redis_sync, settings) == []
    assert spool.spool_size() == 3
    lines = settings.USAGE_SPOOL_PATH.read_bytes().splitlines()
    assert [usage_event.decode(line) for line in lines] == [event(1), event(2), event(3)]

    assert spool.replay_spool(redis_sync) == 3
    assert stream_events(redis_sync, settings) == [event(1), event(2), event(3)]
    assert spool.spool_size() == 0 and spool.spool_bytes() == 0 and not settings.USAGE_SPOOL_PATH.exists()

    assert spool.replay_spool(redis_sync) == 0  # nothing twice
    assert len(stream_events(redis_sync, settings)) == 3


def test_events_spooled_later_are_replayed_after_the_earlier_ones(redis_sync, settings):
    emit_with(dead_redis(), [event(1)])
    spool.replay_spool(redis_sync)
    emit_with(real_redis(settings), [event(2)])
    emit_with(dead_redis(), [event(3)])
    assert spool.replay_spool(redis_sync) == 1
    assert [e.request_id for e in stream_events(redis_sync, settings)] == ["req_test_1", "req_test_2",
                                                                               "req_test_3"]


def test_replay_while_redis_is_still_down_keeps_the_spool(redis_sync, settings):
    emit_with(dead_redis(), [event(1), event(2)])
    down = redis.Redis.from_url(f"redis://127.0.0.1:{closed_port()}/15", socket_timeout=2.0)
    with pytest.raises(redis.RedisError):
        spool.replay_spool(down)
    assert spool.spool_size() == 2
    assert spool.replay_spool(redis_sync) == 2
    assert len(stream_events(redis_sync, settings)) == 2


def test_replay_without_a_spool_file(redis_sync, settings):
    assert not settings.USAGE_SPOOL_PATH.exists()
    assert spool.replay_spool(redis_sync) == 0
    assert stream_events(redis_sync, settings) == []


def test_the_gateways_replay_task_uses_settings(redis_sync, settings):
    """runtime._replay_spool (what the gateway runs every few seconds) drains the spool with its own client."""
    from gomodel.gateway.runtime import _replay_spool

    emit_with(dead_redis(), [event(5)])
    _replay_spool()
    assert stream_events(redis_sync, settings) == [event(5)]
    assert spool.spool_size() == 0


# The writer batches across event-loop ticks (one long-lived flusher per writer), never makes a request
# wait on Redis, and loses nothing: on close, on cancellation, or with a write stuck on a slow Redis.

def run_writer(settings, body, **options):
    """Run `body(writer, client)` on a fresh loop with a writer on the real Redis."""
    async def run():
        client = aioredis.from_url(settings.REDIS_URL)
        try:
            return await body(UsageWriter(lambda: client, **options), client)
        finally:
            await client.aclose()

    return asyncio.run(run())


def test_events_of_many_ticks_go_out_in_one_pipeline(redis_sync, settings):
    async def body(writer, _):
        for n in range(100):
            writer.emit(event(n))
            await asyncio.sleep(0)  # each event in a tick of its own, as requests end
        await writer.flushed()
        return writer.batches

    assert run_writer(settings, body, interval=0.5) == 1
    assert stream_events(redis_sync, settings) == [event(n) for n in range(100)]


def test_a_full_batch_does_not_wait_for_the_interval(redis_sync, settings):
    async def body(writer, _):
        for n in range(20):
            writer.emit(event(n))
            await asyncio.sleep(0)
        async with asyncio.timeout(2):  # the interval is 60 s: only USAGE_WRITE_BATCH sends these
            await writer.flushed()
        return writer.batches

    assert run_writer(settings, body, batch_max=10, interval=60) == 2
    assert len(stream_events(redis_sync, settings)) == 20


def test_closing_the_runtime_writes_what_is_queued(redis_sync, settings):
    """uvicorn's lifespan shutdown calls Runtime.close(): the queue goes to Redis before the client closes,
    without waiting for the interval; an event that comes later (a request cancelled at shutdown) is spooled."""
    from gomodel.gateway.runtime import Runtime

    settings.USAGE_WRITE_INTERVAL = 60.0

    async def run():
        runtime = Runtime()
        for n in range(50):
            runtime.usage.emit(event(n))
        started = time.monotonic()
        await runtime.close()
        runtime.usage.emit(event(50))
        return time.monotonic() - started, runtime.usage.batches

    took, batches = asyncio.run(run())
    assert took < 5 and batches == 1
    assert stream_events(redis_sync, settings) == [event(n) for n in range(50)]
    assert spool.spool_size() == 1
    assert spool.replay_spool(redis_sync) == 1 and len(stream_events(redis_sync, settings)) == 51


def test_the_runtimes_redis_reads_carry_no_socket_timeout():
    """Every caller bounds its own wait (asyncio.timeout); a socket timeout would cost a timer per reply
    read, one per command of a usage batch (redis-py 8 sets 5 s unless told otherwise)."""
    from gomodel.gateway.runtime import Runtime

    async def run():
        runtime = Runtime()
        try:
            return runtime.redis.connection_pool.connection_kwargs["socket_timeout"]
        finally:
            await runtime.close()

    assert asyncio.run(run()) is None


def test_an_event_of_a_cancelled_request_is_written(redis_sync, settings):
    async def body(writer, _):
        async def request(n):
            writer.emit(event(n))
            await asyncio.sleep(10)  # e.g. a slow hang-up, then the server cancels it

        tasks = [asyncio.create_task(request(n)) for n in range(3)]
        await asyncio.sleep(0)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await writer.flushed()

    run_writer(settings, body, interval=0.05)
    assert stream_events(redis_sync, settings) == [event(n) for n in range(3)]


@pytest.fixture
def silent_server():
    """A loopback 'Redis' that accepts connections and never answers: a write hangs until its timeout."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/15"
    server.close()


def test_backpressure_bounds_the_queue_and_loses_nothing(redis_sync, settings, silent_server, monkeypatch):
    """A write stuck on a Redis that does not answer: past queue_max queued events, emitters get a future
    to wait on (the queue stops growing with requests); the stuck batch is spooled at its timeout, the
    rest goes to the real Redis once it answers. A waiter cancelled meanwhile loses nothing."""
    from gomodel.gateway import runtime

    # A gateway the session started replays the spool every 5 s: this test replays its own.
    monkeypatch.setattr(runtime, "_replay_spool", lambda: None)
    async def run():
        silent, real = aioredis.from_url(silent_server, retry=None), aioredis.from_url(settings.REDIS_URL)
        clients = [silent]
        writer = UsageWriter(lambda: clients[0], timeout=0.5, batch_max=2, interval=0, queue_max=5)
        try:
            rooms = [writer.emit(event(n)) for n in range(2)]
            await asyncio.sleep(0.05)  # the flusher took these two: their write hangs
            clients[0] = real  # the next batch goes to a Redis that answers
            rooms += [writer.emit(event(n)) for n in range(2, 9)]
            assert rooms[:7] == [None] * 7  # 5 queued behind the stuck write: no waiting yet
            waits = rooms[7:]
            assert len(waits) == 2 and not any(w.done() for w in waits)
            waits[1].cancel()  # its request went away: the event stays queued
            await asyncio.sleep(0.2)
            assert not waits[0].done() and len(writer._queue) == 7  # still stuck: nothing taken
            async with asyncio.timeout(3):
                await waits[0]  # the stuck batch timed out (spooled), the queue went into the next batch
                await writer.flushed()
            return writer.batches
        finally:
            await silent.aclose()
            await real.aclose()

    assert asyncio.run(run()) == 2
    assert spool.spool_size() == 2
    assert stream_events(redis_sync, settings) == [event(n) for n in range(2, 9)]
    assert spool.replay_spool(redis_sync) == 2
    assert sorted(e.request_id for e in stream_events(redis_sync, settings)) == sorted(
        event(n).request_id for n in range(9))
