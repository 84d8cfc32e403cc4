"""The usage spool under pressure (issue #12, item 6): appends never wait on a replay stuck on Redis,
its size is read in O(1), and a full spool drops events loudly (error log + counter), never silently."""

import logging
import socket
import threading
import time

import orjson
import pytest
import redis

from accounting.usage import metrics as usage_metrics
from accounting.usage import spool
from gomodel.gateway import metrics


def event(n: int) -> bytes:
    return orjson.dumps({"request_id": f"req_spool_{n}", "tenant": "acme", "status": 200, "completion_tokens": n})


def stream_ids(redis_sync, settings) -> list[str]:
    return [orjson.loads(fields[b"e"])["request_id"] for _, fields in redis_sync.xrange(settings.USAGE_STREAM)]


@pytest.fixture
def silent_redis():
    """A loopback 'Redis' that accepts connections and never answers: a replay hangs in its pipeline."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2.0, socket_connect_timeout=1.0,
                         retry=None)
    yield client
    client.close()
    server.close()


def test_appends_do_not_wait_on_a_replay_stuck_on_redis(redis_sync, settings, silent_redis):
    for n in range(3):
        spool.spool(event(n))
    failed = []
    replay = threading.Thread(target=lambda: failed.append(_raises(spool.replay_spool, silent_redis)))
    replay.start()
    time.sleep(0.3)  # the replay has moved the spool aside and waits on the silent Redis
    assert replay.is_alive()
    started = time.perf_counter()
    assert spool.spool(event(3))
    assert time.perf_counter() - started < 0.5  # it held the writers' lock for 2 s and more before
    replay.join(timeout=10)
    assert failed == [True] and spool.spool_size() == 4  # nothing lost: the moved file stays
    # The next replay takes what the failed one left (older) first, then the new spool: order kept.
    assert spool.replay_spool(redis_sync) == 4
    assert stream_ids(redis_sync, settings) == [f"req_spool_{n}" for n in range(4)]
    assert spool.spool_size() == 0 and spool.spool_bytes() == 0


def _raises(call, *args) -> bool:
    try:
        call(*args)
    except redis.RedisError:
        return True
    return False


def test_spool_size_is_read_without_reading_the_spool(settings):
    import fcntl

    path = settings.USAGE_SPOOL_PATH
    # Hold the replay's lock: the session's gateway (every 5 s) must not replay 40 MB of garbage into the stream.
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for n in range(3):
            spool.spool(event(n))
        size = spool.spool_bytes()
        assert spool.spool_size() == 3 and size == sum(len(event(n)) + 1 for n in range(3))
        with open(path, "ab") as f:  # 40 MB appended behind its back
            f.write((b"x" * 399 + b"\n") * 100_000)
        started = time.perf_counter()
        assert spool.spool_size() == 3  # the counter, not a scan of 40 MB
        assert spool.spool_bytes() == size + 40_000_000
        assert time.perf_counter() - started < 0.01
        path.unlink()


def test_a_full_spool_drops_loudly(settings, redis_sync, caplog):
    settings.USAGE_SPOOL_MAX_BYTES = 10 * (len(event(10)) + 1)
    dropped_before = usage_metrics.DROPPED._value.get()
    with caplog.at_level(logging.ERROR, logger="accounting.spool.spool"):
        kept = [spool.spool(event(n), f"req_spool_{n}") for n in range(10, 25)]
    assert kept == [True] * 10 + [False] * 5
    assert spool.spool_size() == 10 and spool.spool_bytes() <= settings.USAGE_SPOOL_MAX_BYTES
    assert usage_metrics.DROPPED._value.get() - dropped_before == 5
    assert any("DROPPED" in r.getMessage() and "USAGE_SPOOL_MAX_BYTES" in r.getMessage() for r in caplog.records)
    assert spool.replay_spool(redis_sync) == 10  # what was kept is replayed; the spool has room again
    assert spool.spool(event(99))


def test_dropped_events_are_counted_on_metrics(settings):
    settings.USAGE_SPOOL_MAX_BYTES = 0
    before = usage_metrics.DROPPED._value.get()
    assert not spool.spool(event(1))
    body, _ = metrics.render(None, spool.spool_size(), spool.spool_bytes())
    assert f"gomodel_usage_events_dropped_total {before + 1}" in body.decode()
    assert "gomodel_usage_spool_bytes 0.0" in body.decode()


def test_concurrent_appends_and_replays_lose_nothing(redis_sync, settings):
    """Writers in four threads while a fifth replays in a loop: every event reaches the stream once
    (the file moved aside between a writer's open and its lock must not swallow a line)."""
    done = threading.Event()

    def write(worker):
        for n in range(300):
            assert spool.spool(event(worker * 1000 + n))

    def replay():
        while not done.is_set():
            spool.replay_spool(redis_sync)

    replayer = threading.Thread(target=replay)
    replayer.start()
    writers = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(timeout=30)
    done.set()
    replayer.join(timeout=30)
    spool.replay_spool(redis_sync)
    ids = stream_ids(redis_sync, settings)
    assert len(ids) == 1200 and len(set(ids)) == 1200
    assert spool.spool_size() == 0 and spool.spool_bytes() == 0
