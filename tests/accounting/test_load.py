"""≥ 2,000 mixed requests through the gateway while the drain runs: one UsageEvent per request, the
tokens the clients were told, estimated ones marked and counted, roll-ups equal to the events."""

import asyncio
import threading
import time

import pytest

from accounting.prices.defaults import load_default_prices
from accounting.usage import events as usage_event
from accounting.usage.drain import drain
from accounting.usage.events import StreamEvent

from .conftest import wait_until
from .load import check_events, check_rollups_match_events, run_load, stored_events

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
REQUESTS = 2000


@pytest.fixture
def flaky(make_provider, upstream):
    return make_provider(name="flaky", base_url=upstream.base_url)


def test_load_bills_every_request_once_as_its_client_was_told(gateway, provider, flaky, tenant_key, upstream,
                                                             redis_sync, settings):
    load_default_prices()
    stop = threading.Event()
    drains = []

    def drain_while_loaded():  # the beat task, every 0.3 s, concurrent with the traffic
        from django.db import connection

        try:
            while not stop.is_set():
                drains.append(drain(max_seconds=5))
                stop.wait(0.3)
        finally:
            connection.close()

    drainer = threading.Thread(target=drain_while_loaded, daemon=True)
    drainer.start()
    started = time.monotonic()
    try:
        outcomes = asyncio.run(run_load(gateway, tenant_key[2], REQUESTS, concurrency=32, timeout=90))
    finally:
        stop.set()
        drainer.join(timeout=30)
    elapsed = time.monotonic() - started

    # Every event reaches the stream (emitted just after its response), then one last drain.
    def all_emitted():
        return len(stored_events()) + redis_sync.xlen(settings.USAGE_STREAM) >= REQUESTS

    wait_until(all_emitted, 15, 0.1, "every usage event")
    final = drain(max_seconds=30)
    assert not final.skipped

    events = stored_events()
    summary = check_events(outcomes, events)
    totals = check_rollups_match_events()
    assert redis_sync.xlen(settings.USAGE_STREAM) == 0
    assert sum(d.inserted for d in drains) + final.inserted == REQUESTS
    assert summary["estimated"] == {"hangup": REQUESTS // 8, "break": REQUESTS // 8}
    # Priced where the bundled table knows the model (gpt-4o-mini), null where it does not.
    assert all(e["cost"] is not None for e in events.values() if e["status"] == 200 and e["usage_source"] == "reported"
               and e["completion_tokens"] == 6)
    assert all(e["cost"] is None for e in events.values() if e["usage_source"] == "estimated")

    # Redelivering every event (a crash between commit and XACK, a spool replayed twice) adds nothing.
    from accounting.models import UsageEvent

    pipe = redis_sync.pipeline(transaction=False)
    for request_id in list(events)[:500]:
        pipe.xadd(settings.USAGE_STREAM, {"e": usage_event.encode(StreamEvent(
            request_id=request_id, status=200, prompt_tokens=999, ts=time.time()))})
    pipe.execute()
    again = drain()
    assert (again.inserted, again.duplicates) == (0, 500)
    assert UsageEvent.objects.count() == REQUESTS
    assert check_rollups_match_events() == totals

    print(f"\nload: {REQUESTS} requests in {elapsed:.1f}s ({REQUESTS / elapsed:.0f}/s) with the drain running "
          f"({len(drains)} concurrent drains); {summary}; stored totals {totals}")
