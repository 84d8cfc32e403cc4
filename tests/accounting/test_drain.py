"""accounting.usage.drain against the real Redis (db 15) and the test database: rows, roll-ups, costs,
exactly-once under redelivery, reclaiming a dead consumer's entries, the spool, the dead-letter list,
the lock, retention, the management command and the beat schedule."""

import asyncio
import time
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import orjson
import pytest
import redis.asyncio as aioredis
from django.core.management import call_command
from django.db.models.signals import post_save

from accounting.models import ApiKey, ModelPrice, UsageDaily, UsageEvent
from accounting.prices.defaults import load_default_prices
from accounting.usage import drain as drain_module
from accounting.usage import events as usage_event
from accounting.usage import spool, stream
from accounting.usage.drain import drain, purge_old_events
from accounting.usage.events import StreamEvent
from accounting.usage.stream import drain_lock
from accounting.usage.writer import UsageWriter

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def acme(tenant_key):
    load_default_prices()
    return tenant_key


def make_event(tenant_key, **overrides) -> StreamEvent:
    """An event as the gateway emits it (overrides may be odd values, as an older or broken writer's)."""
    tenant, key, _ = tenant_key
    event = {"request_id": "req_" + uuid.uuid4().hex, "ts": time.time(), "tenant_id": tenant.id,
             "tenant": tenant.slug, "api_key_id": key.id, "api_key_prefix": key.prefix, "provider_id": 1,
             "provider": "openai", "provider_type": "openai", "requested_model": "gpt-4o-mini", "model": "gpt-4o-mini",
             "endpoint": "/v1/chat/completions", "status": 200, "error_type": None, "stream": False,
             "latency_ms": 12.5, "ttft_ms": None, "prompt_tokens": 11, "completion_tokens": 6, "total_tokens": 17,
             "cached_tokens": 2, "reasoning_tokens": 0, "usage_source": "reported", "attempts": []}
    event.update(overrides)
    return StreamEvent(**event)


def add(redis_sync, settings, *events):
    for event in events:
        payload = event if isinstance(event, bytes) else usage_event.encode(event)
        redis_sync.xadd(settings.USAGE_STREAM, {"e": payload})


def test_drain_stores_events_adds_rollups_prices_and_acks(acme, redis_sync, settings):
    saved = []
    post_save.connect(lambda sender, **kw: saved.append(sender), sender=ApiKey, weak=False, dispatch_uid="t-drain")
    try:
        a = make_event(acme)
        b = make_event(acme, prompt_tokens=100, completion_tokens=50, total_tokens=150, cached_tokens=0)
        c = make_event(acme, model="tool-model", usage_source="estimated")
        d = make_event(acme, status=502, error_type="provider_error", prompt_tokens=0, completion_tokens=0,
                       total_tokens=0, cached_tokens=0, usage_source="none")
        add(redis_sync, settings, a, b, c, d)
        result = drain()
    finally:
        post_save.disconnect(sender=ApiKey, dispatch_uid="t-drain")

    assert (result.read, result.inserted, result.duplicates, result.batches) == (4, 4, 0, 1)
    assert redis_sync.xlen(settings.USAGE_STREAM) == 0  # acknowledged and deleted
    assert redis_sync.xpending(settings.USAGE_STREAM, settings.USAGE_CONSUMER_GROUP)["pending"] == 0
    row = UsageEvent.objects.get(request_id=a.request_id)
    assert (row.tenant_id, row.api_key_id, row.provider, row.model, row.status, row.usage_source) == (
        acme[0].id, acme[1].id, "openai", "gpt-4o-mini", 200, "reported")
    # gpt-4o-mini: 9 × 0.15 + 2 × 0.075 + 6 × 0.60 per million
    assert row.cost == Decimal("0.0000051")
    assert UsageEvent.objects.get(request_id=c.request_id).cost is None  # no price for tool-model: null, not 0

    mini = UsageDaily.objects.get(model="gpt-4o-mini")
    assert (mini.requests, mini.errors, mini.prompt_tokens, mini.completion_tokens, mini.total_tokens,
            mini.cached_tokens, mini.unpriced_requests) == (3, 1, 111, 56, 167, 2, 0)
    assert mini.day == datetime.fromtimestamp(a.ts, timezone.utc).date()
    assert mini.cost == Decimal("0.0000051") + UsageEvent.objects.get(request_id=b.request_id).cost
    tool = UsageDaily.objects.get(model="tool-model")
    assert (tool.requests, tool.estimated_requests, tool.unpriced_requests, tool.cost) == (1, 1, 1, None)

    # last_used_at moved by a queryset update: no post_save, so the gateway's key caches stay warm
    key = ApiKey.objects.get(pk=acme[1].pk)
    assert key.last_used_at is not None and abs(key.last_used_at.timestamp() - d.ts) < 1
    assert saved == []


def test_a_redelivered_event_is_counted_once(acme, redis_sync, settings):
    event = make_event(acme)
    add(redis_sync, settings, event, event)  # twice in one batch (a spool replayed into a live stream)
    assert (drain().inserted, UsageEvent.objects.count()) == (1, 1)
    add(redis_sync, settings, event)  # and again later (a commit whose XACK was lost)
    again = drain()
    assert (again.inserted, again.duplicates) == (0, 1)
    assert UsageDaily.objects.get().requests == 1
    assert UsageDaily.objects.get().prompt_tokens == 11


def test_rollups_add_up_exactly_across_drains(acme, redis_sync, settings):
    total = Decimal(0)
    for i in range(5):
        event = make_event(acme, prompt_tokens=1234567 + i, completion_tokens=7654321, total_tokens=8888888 + i,
                           cached_tokens=3)
        add(redis_sync, settings, event)
        drain()
        total += UsageEvent.objects.get(request_id=event.request_id).cost
    row = UsageDaily.objects.get()
    assert row.requests == 5 and row.prompt_tokens == 5 * 1234567 + 10
    assert row.cost == total  # integer 1e-10 USD: exact on SQLite too


def test_entries_of_a_dead_consumer_are_reclaimed_after_min_idle(acme, redis_sync, settings):
    stream.ensure_group(redis_sync)
    events = [make_event(acme) for _ in range(5)]
    add(redis_sync, settings, *events)
    # A worker read them and died before acknowledging.
    redis_sync.xreadgroup(settings.USAGE_CONSUMER_GROUP, "dead-worker", {settings.USAGE_STREAM: ">"}, count=10)
    assert drain(claim_idle_ms=60_000).reclaimed == 0  # not idle long enough: still the dead worker's
    assert UsageEvent.objects.count() == 0
    time.sleep(0.05)
    result = drain(claim_idle_ms=10)
    assert (result.reclaimed, result.inserted) == (5, 5)
    assert redis_sync.xpending(settings.USAGE_STREAM, settings.USAGE_CONSUMER_GROUP)["pending"] == 0


def test_a_failed_batch_is_retried_by_the_next_drain(acme, redis_sync, settings, monkeypatch):
    add(redis_sync, settings, *[make_event(acme) for _ in range(3)])

    def broken(events):
        raise RuntimeError("database went away")

    monkeypatch.setattr(drain_module, "add_to_rollups", broken)
    with pytest.raises(RuntimeError):
        drain()
    assert UsageEvent.objects.count() == 0  # the transaction was rolled back
    monkeypatch.undo()
    assert drain().inserted == 3  # our own pending entries come first
    assert UsageDaily.objects.get().requests == 3


def test_events_spooled_while_redis_was_down_are_replayed_and_drained(acme, redis_sync, settings):
    events = [make_event(acme) for _ in range(3)]

    async def emit_without_redis():
        dead = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2, retry=None)
        try:
            writer = UsageWriter(lambda: dead)
            for event in events:
                writer.emit(event)
            await writer.close()
        finally:
            await dead.aclose()

    asyncio.run(emit_without_redis())
    assert spool.spool_size() == 3 and redis_sync.xlen(settings.USAGE_STREAM) == 0
    result = drain()
    assert (result.replayed, result.inserted) == (3, 3)
    assert spool.spool_size() == 0
    assert {e.request_id for e in UsageEvent.objects.all()} == {e.request_id for e in events}


def test_unusable_entries_go_to_the_dead_letter_list_and_do_not_block_the_rest(acme, redis_sync, settings):
    redis_sync.delete(settings.USAGE_STREAM + ":dead")
    good = make_event(acme)
    add(redis_sync, settings, b"not json", orjson.dumps({"status": 200}), good,
        make_event(acme, request_id="x" * 80))
    result = drain()
    assert (result.inserted, result.dead) == (1, 3)
    assert redis_sync.llen(settings.USAGE_STREAM + ":dead") == 3
    assert redis_sync.xlen(settings.USAGE_STREAM) == 0
    redis_sync.delete(settings.USAGE_STREAM + ":dead")


def test_odd_values_are_clamped_and_a_deleted_tenant_keeps_its_name(acme, redis_sync, settings):
    event = make_event(acme, tenant_id=987654, api_key_id=987654, prompt_tokens=-5, completion_tokens="7",
                       model="m" * 400, status="200", ts=None)
    add(redis_sync, settings, event)
    assert drain().inserted == 1
    row = UsageEvent.objects.get()
    assert (row.tenant_id, row.tenant_slug, row.api_key_id, row.prompt_tokens, row.completion_tokens,
            len(row.model), row.status) == (None, "acme", None, 0, 0, 255, 0)


def test_only_one_drain_at_a_time(acme, redis_sync, settings):
    add(redis_sync, settings, make_event(acme))
    lock = drain_lock(redis_sync, 5)
    assert lock.acquire()
    try:
        assert drain().skipped
        assert UsageEvent.objects.count() == 0
    finally:
        lock.release()
    assert drain().inserted == 1


def test_retention_deletes_old_raw_events_and_keeps_rollups(acme, redis_sync, settings):
    old = make_event(acme, ts=time.time() - 100 * 86400)
    recent = make_event(acme)
    add(redis_sync, settings, old, recent)
    drain()
    assert purge_old_events(days=90) == 1
    assert list(UsageEvent.objects.values_list("request_id", flat=True)) == [recent.request_id]
    assert sorted(UsageDaily.objects.values_list("requests", flat=True)) == [1, 1]
    assert UsageDaily.objects.filter(day=(datetime.now(timezone.utc) - timedelta(days=100)).date()).exists()


def test_drain_usage_command(acme, redis_sync, settings, capsys):
    add(redis_sync, settings, make_event(acme), make_event(acme))
    call_command("drain_usage")
    assert "2 new events" in capsys.readouterr().out
    assert UsageEvent.objects.count() == 2


def test_celery_beat_drains_every_flush_interval_and_purges_hourly(settings):
    import accounting.tasks  # noqa: F401  (what autodiscover_tasks imports when a worker starts)
    from gomodel.celery import app

    schedule = app.conf.beat_schedule
    assert schedule["usage-drain"]["task"] == "accounting.drain_usage"
    assert schedule["usage-drain"]["schedule"] == settings.USAGE_FLUSH_INTERVAL == 5.0
    assert schedule["usage-retention"]["task"] == "accounting.purge_usage_events"
    assert {"accounting.drain_usage", "accounting.purge_usage_events"} <= set(app.tasks.keys())


def test_admin_lists_usage_and_counts_unpriced_events(acme, redis_sync, settings, admin_client):
    add(redis_sync, settings, make_event(acme), make_event(acme, model="tool-model"))
    drain()
    page = admin_client.get("/admin/accounting/usageevent/")
    assert page.status_code == 200
    assert b"1 without a matching price" in page.content
    assert admin_client.get("/admin/accounting/usageevent/?priced=no").status_code == 200
    assert admin_client.get("/admin/accounting/usagedaily/").status_code == 200
    assert admin_client.get("/admin/accounting/modelprice/").status_code == 200
    assert ModelPrice.objects.exists()
    assert admin_client.get("/admin/accounting/usageevent/add/").status_code == 403


def test_an_expired_drain_lock_is_neither_extended_nor_released_as_ours(redis_sync, settings):
    key = settings.USAGE_STREAM + ":drain-lock"
    mine = drain_lock(redis_sync, 5)
    assert mine.acquire()
    assert stream.still_held(mine)
    redis_sync.delete(key)  # what its expiry does
    theirs = drain_lock(redis_sync, 5)
    assert theirs.acquire() and not mine.acquire()
    assert not stream.still_held(mine)
    stream.release_drain_lock(mine)  # must not free the other drain's lock
    assert redis_sync.exists(key)
    stream.release_drain_lock(theirs)
    assert not redis_sync.exists(key)


def test_the_provider_key_label_is_stored_on_the_row(acme, redis_sync, settings):
    event = make_event(acme, provider_key="key-2")
    add(redis_sync, settings, event, make_event(acme))  # the second as an older gateway wrote it: no label
    drain()
    assert UsageEvent.objects.get(request_id=event.request_id).provider_key == "key-2"
    assert sorted(UsageEvent.objects.values_list("provider_key", flat=True)) == ["", "key-2"]
