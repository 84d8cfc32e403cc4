"""Nothing lost, nothing counted twice when a Celery worker dies mid-batch or Redis restarts mid-load.

Both run against a private redis-server (AOF on) started by the test, never the machine's Redis, with
a gateway and real Celery workers (subprocesses, embedded beat every 0.3 s) pointed at it.
"""

import asyncio
import threading
import time

import pytest

from accounting.models import UsageEvent
from accounting.prices.defaults import load_default_prices
from accounting.usage import metrics as usage_metrics

from .conftest import wait_until
from .load import check_events, check_rollups_match_events, run_load, stored_events

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def flaky(make_provider, upstream):
    return make_provider(name="flaky", base_url=upstream.base_url)


def _pending(client, settings) -> int:
    try:
        return client.xpending(settings.USAGE_STREAM, settings.USAGE_CONSUMER_GROUP)["pending"]
    except Exception:
        return 0


def test_worker_killed_mid_batch_twice_then_restarted(private_gateway, private_redis, provider, flaky, tenant_key,
                                                      workers, settings):
    load_default_prices()
    requests = 600
    outcomes = asyncio.run(run_load(private_gateway, tenant_key[2], requests, concurrency=24, timeout=60))
    client = private_redis.client()
    stream, group = settings.USAGE_STREAM, settings.USAGE_CONSUMER_GROUP
    wait_until(lambda: client.xlen(stream) >= requests, 15, message="every usage event in the stream")

    # Worker A dies inside its transaction (rows inserted, not committed): the database rolls it back,
    # its 100 entries stay pending on its consumer.
    a = workers(private_redis.url, kill_at="in_transaction")
    a.wait_for_marker(30)
    a_pending = {entry["message_id"] for entry in client.xpending_range(stream, group, "-", "+", 1000)}
    assert len(a_pending) == 100
    a.kill()
    assert UsageEvent.objects.count() == 0

    # Worker B waits out A's drain lock, reclaims A's entries (XAUTOCLAIM), commits them and dies before
    # XACK: the rows are there, the entries still pending (now on B's consumer).
    b = workers(private_redis.url, kill_at="before_ack")
    b.wait_for_marker(30)
    b_pending = {entry["message_id"] for entry in client.xpending_range(stream, group, "-", "+", 1000)}
    assert b_pending == a_pending
    assert UsageEvent.objects.count() == 100
    b.kill()

    # Worker C reclaims B's entries, finds them stored (no double count), drains the rest.
    c = workers(private_redis.url)
    wait_until(lambda: client.xlen(stream) == 0 and _pending(client, settings) == 0, 40, 0.1,
               "worker C to drain everything")
    wait_until(lambda: "reclaimed 100 entries" in c.output(), 5, message="C's reclaim in its log")

    events = stored_events()
    summary = check_events(outcomes, events)
    check_rollups_match_events()
    assert len(events) == requests
    print(f"\nworker crash: {summary}")


def test_redis_restarted_mid_load(private_gateway, private_redis, provider, flaky, tenant_key, workers, settings):
    load_default_prices()
    requests = 900
    outage = 5.0  # longer than redis-py's own retries (~4 s), so that events are spooled
    client = private_redis.client()
    worker = workers(private_redis.url)
    spooled_before = usage_metrics.SPOOLED._value.get()
    restarts = []

    def restart():
        private_redis.stop()
        restarts.append(time.monotonic())
        time.sleep(outage)
        private_redis.start()
        restarts.append(time.monotonic())

    restarter = threading.Thread(target=restart, daemon=True)

    async def on_progress(done):
        if done == requests // 5:
            restarter.start()  # the traffic goes on while Redis is down

    outcomes = asyncio.run(run_load(private_gateway, tenant_key[2], requests, concurrency=16, timeout=90,
                                    on_progress=on_progress))
    restarter.join(timeout=30)
    assert len(restarts) == 2, "Redis was not restarted"

    # The spool is replayed into the stream (the gateway every 5 s, the worker's drain too) and drained.
    wait_until(lambda: UsageEvent.objects.count() >= requests and client.xlen(settings.USAGE_STREAM) == 0, 45, 0.2,
               f"every event stored (have {UsageEvent.objects.count()})")
    time.sleep(1.0)  # a duplicate arriving late would show up now
    events = stored_events()
    summary = check_events(outcomes, events)
    check_rollups_match_events()
    assert len(events) == requests
    spooled = usage_metrics.SPOOLED._value.get() - spooled_before
    assert spooled > 0, "the outage was too short to spool anything"
    assert not settings.USAGE_SPOOL_PATH.exists() or settings.USAGE_SPOOL_PATH.stat().st_size == 0
    assert worker.process.poll() is None, worker.output()
    print(f"\nredis restart: {spooled:.0f} events spooled during a {outage:.0f}s outage; {summary}")
