"""The usage drain: Redis Stream → `UsageEvent` rows and `UsageDaily` roll-ups, exactly once.

    replay the local spool (if any) → take the drain lock → XAUTOCLAIM entries idle on dead consumers
    → XREADGROUP our pending entries, then new ones (batches of USAGE_BATCH_SIZE) → one DB transaction
    per batch: skip request ids already stored, insert the new events, add *those* to the roll-ups,
    bump ApiKey.last_used_at → commit → XACK + XDEL.

Delivery is at-least-once (a batch whose commit or ack did not happen is read again); the unique
`request_id`, checked inside the same transaction as the insert, makes the rows and the roll-ups
exactly-once. Drains are serialised twice: a Redis lock (one drain at a time across workers, so no
work is wasted) and, for correctness even if that lock expired, the database itself (a transaction-
scoped advisory lock on PostgreSQL; SQLite's IMMEDIATE transactions already take the write lock).

Entries are deleted from the stream once acknowledged, so XLEN is the backlog and the oldest entry's
age is the drain lag. An entry that cannot be parsed, or that the database rejects on its own, goes
to the `<stream>:dead` list (and the log) instead of blocking every later event.
"""

import logging
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any, cast

import orjson
import redis
from django.conf import settings
from django.db import DataError, IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from ..budgets import services as budgets
from ..budgets.webhooks import check_soft_limits
from ..models import ApiKey, Tenant, UsageDaily, UsageEvent
from ..prices.book import PriceBook, event_price
from ..prices.units import audio_seconds
from . import estimate, spool
from . import events as usage_event
from . import metrics as usage_metrics
from .events import TOKEN_FIELDS, StreamEvent
from .rollups import UNIT_FIELDS, aggregate, with_saving
from .stream import consumer_name, drain_lock, ensure_group, redis_client, release_drain_lock, still_held

log = logging.getLogger(__name__)

PG_LOCK_KEY = 0x676F6D6F64656C  # "gomodel": the transaction-scoped advisory lock of the drain
CHUNK = 500  # ids per IN (...) query
DEAD_CONSUMER_IDLE_MS = 3_600_000


@dataclass
class DrainResult:
    read: int = 0  # stream entries handled (reclaimed ones included)
    reclaimed: int = 0  # entries taken over from consumers that went quiet
    inserted: int = 0  # new UsageEvent rows
    duplicates: int = 0  # events already stored (redelivery, spool replay)
    dead: int = 0  # unusable entries moved to the dead-letter list
    batches: int = 0
    replayed: int = 0  # spooled events moved into the stream first
    skipped: bool = False  # another drain held the lock

    def as_dict(self) -> dict:
        return asdict(self)














def drain(client: redis.Redis | None = None, *, consumer: str | None = None, claim_idle_ms: int | None = None,
          max_seconds: float | None = None, batch_size: int | None = None) -> DrainResult:
    """Drain the usage stream until it is empty or `max_seconds` have passed (one drain at a time)."""
    own_client = client is None
    client = client or redis_client()
    consumer = consumer or consumer_name()
    claim_idle_ms = settings.USAGE_CLAIM_IDLE_MS if claim_idle_ms is None else claim_idle_ms
    max_seconds = settings.USAGE_DRAIN_MAX_SECONDS if max_seconds is None else max_seconds
    batch_size = batch_size or settings.USAGE_BATCH_SIZE
    result = DrainResult()
    try:
        if settings.USAGE_SPOOL_PATH.exists():
            result.replayed = spool.replay_spool(client)
        lock = drain_lock(client, settings.USAGE_DRAIN_LOCK_TTL)
        if not lock.acquire():
            result.skipped = True
            return result
        try:
            ensure_group(client)
            result.reclaimed = reclaim(client, consumer, claim_idle_ms, batch_size)
            prices = PriceBook.load()
            deadline = time.monotonic() + max_seconds
            pending_first = True  # our own unacknowledged entries (reclaimed or from a failed batch) first
            while time.monotonic() < deadline:
                entries = read_batch(client, consumer, batch_size, "0" if pending_first else ">")
                if not entries:
                    if pending_first:
                        pending_first = False
                        continue
                    break
                store_and_ack(client, entries, prices, result)
                if not still_held(lock):
                    log.warning("the usage drain lock expired mid-drain; stopping this run")
                    break
            client.set(settings.USAGE_STREAM + usage_metrics.LAST_DRAIN_KEY_SUFFIX,
                       orjson.dumps({"at": time.time(), **result.as_dict()}))
        finally:
            release_drain_lock(lock)
    finally:
        if own_client:
            client.close()
    if result.read or result.replayed:
        log.info("usage drain: %s", result.as_dict())
    return result


def reclaim(client: redis.Redis, consumer: str, min_idle_ms: int, batch_size: int) -> int:
    """Take over entries that other consumers left pending for longer than `min_idle_ms`."""
    stream, group = settings.USAGE_STREAM, settings.USAGE_CONSUMER_GROUP
    claimed = 0
    start = "0-0"
    for _ in range(1000):  # bounded: each call scans up to `batch_size` pending entries
        answer = client.xautoclaim(stream, group, consumer, min_idle_ms, start_id=start, count=batch_size)
        start = answer[0]
        claimed += len(answer[1])
        if start in (b"0-0", "0-0"):
            break
    if claimed:
        log.warning("usage drain %s reclaimed %d entries left pending by a consumer that went quiet",
                    consumer, claimed)
    _forget_dead_consumers(client, consumer)
    return claimed


def _forget_dead_consumers(client: redis.Redis, me: str) -> None:
    """Every worker process is a consumer; drop the ones gone for an hour with nothing pending."""
    try:
        for info in client.xinfo_consumers(settings.USAGE_STREAM, settings.USAGE_CONSUMER_GROUP):
            name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
            if name != me and info["pending"] == 0 and info["idle"] > DEAD_CONSUMER_IDLE_MS:
                client.xgroup_delconsumer(settings.USAGE_STREAM, settings.USAGE_CONSUMER_GROUP, name)
    except redis.ResponseError:
        pass


def read_batch(client: redis.Redis, consumer: str, count: int, start: str) -> list:
    # redis-py types every protocol version and decoding at once; this client speaks RESP2, in bytes.
    answer = cast(list[tuple[bytes, list[Any]]], client.xreadgroup(
        settings.USAGE_CONSUMER_GROUP, consumer, {settings.USAGE_STREAM: start}, count=count))
    return answer[0][1] if answer else []


def store_and_ack(client: redis.Redis, entries: list, prices: PriceBook, result: DrainResult) -> None:
    ids = [entry_id for entry_id, _ in entries]
    raws: dict[str, bytes] = {}
    events, dead = [], []
    for _, fields in entries:
        raw = (fields or {}).get(b"e")
        if raw is None:
            continue  # deleted from the stream while pending (XDEL after a commit whose XACK was lost)
        try:
            event = estimate.settle(usage_event.decode(raw))  # a cut stream's tokens are counted here
        except (ValueError, TypeError) as exc:
            dead.append((raw, f"unreadable: {exc}"))
            continue
        events.append(event)
        raws.setdefault(event.request_id, raw)
    started = time.perf_counter()
    try:
        inserted, duplicates = store(events, prices)
    except (IntegrityError, DataError):
        # One event the database refuses must not block the others: store them one by one.
        inserted = duplicates = 0
        for event in events:
            try:
                one_inserted, one_duplicate = store([event], prices)
            except (IntegrityError, DataError) as exc:
                dead.append((raws[event.request_id], f"rejected by the database: {exc}"))
                continue
            inserted += one_inserted
            duplicates += one_duplicate
    usage_metrics.DRAIN_SECONDS.observe(time.perf_counter() - started)
    pending, bases = budget_changes(events)
    if dead:
        pipe = client.pipeline(transaction=False)
        for raw, why in dead:
            log.error("usage event moved to %s:dead (%s): %.300r", settings.USAGE_STREAM, why, raw)
            pipe.rpush(settings.USAGE_STREAM + ":dead", raw)
        pipe.execute()
    ack(client, ids, pending, bases)  # after the commit: a crash before this line only means a redelivery
    if bases:
        check_soft_limits(client, list(bases))
    usage_metrics.DRAINED.inc(inserted)
    result.read += len(entries)
    result.inserted += inserted
    result.duplicates += duplicates
    result.dead += len(dead)
    result.batches += 1


def budget_changes(events: list[StreamEvent]) -> tuple[dict[str, int], dict[str, int]]:
    """What acknowledging these entries does to the budget counters: each event's cost leaves
    `pending` (as the gateway added it) and every counter touched gets its `base` from the database,
    which now holds the batch (accounting/budgets/services.py)."""
    pending: dict[str, int] = defaultdict(int)
    for event in events:
        for name in event.budget_keys:
            pending[name] += event.cost_e10
    # Also the budgets of every tenant and key in the batch, for events that carry no counters (made
    # while Redis was down, or just before a budget was set): their spend reaches `base` now.
    touched = set(pending) | budgets.counters_of(events)
    bases = {name: budgets.base_for(name) for name in touched}
    return pending, {name: value for name, value in bases.items() if value is not None}


def ack(client: redis.Redis, ids: list, pending: dict[str, int] | None = None,
        bases: dict[str, int] | None = None) -> None:
    """XACK + XDEL and the budget counters' hand-over from `pending` to `base`, in one MULTI."""
    pipe = client.pipeline(transaction=True)
    pipe.xack(settings.USAGE_STREAM, settings.USAGE_CONSUMER_GROUP, *ids)
    pipe.xdel(settings.USAGE_STREAM, *ids)
    for name, amount in (pending or {}).items():
        if amount:
            pipe.decrby(name + ":pending", amount)
    budgets.set_bases(pipe, bases or {})
    pipe.execute()


# -- events ------------------------------------------------------------------------------------------

def _ids_in(model, field: str, values) -> set:
    values = list(values)
    found = set()
    for i in range(0, len(values), CHUNK):
        found.update(model.objects.filter(**{f"{field}__in": values[i:i + CHUNK]}).values_list(field, flat=True))
    return found


def _serialise_drains() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PG_LOCK_KEY])


def store(events: list[StreamEvent], prices: PriceBook) -> tuple[int, int]:
    """Insert the events not stored yet and add exactly those to the roll-ups; (inserted, duplicates)."""
    unique: dict[str, StreamEvent] = {}
    for event in events:
        unique.setdefault(event.request_id, event)
    with transaction.atomic():
        _serialise_drains()
        existing = _ids_in(UsageEvent, "request_id", unique)
        new = [event for request_id, event in unique.items() if request_id not in existing]
        if not new:
            return 0, len(events)
        tenants = _ids_in(Tenant, "id", {e.tenant_id for e in new if e.tenant_id})
        keys = _ids_in(ApiKey, "id", {e.api_key_id for e in new if e.api_key_id})
        rows, priced = [], []
        for event in new:
            # A tenant or key deleted since: the row keeps the slug and prefix, not a dangling id.
            event = event.replace(tenant_id=event.tenant_id if event.tenant_id in tenants else None,
                                  api_key_id=event.api_key_id if event.api_key_id in keys else None)
            cost, source = event_price(prices, event)
            event = with_saving(prices, event)
            priced.append((event, cost))
            rows.append(UsageEvent(
                request_id=event.request_id, created_at=event.created_at, tenant_id=event.tenant_id,
                # event.tenant is "" for the master key once decoded (None only before): the column is NOT NULL.
                tenant_slug=event.tenant or "", api_key_id=event.api_key_id, api_key_prefix=event.api_key_prefix,
                provider_config_id=event.provider_id, provider=event.provider, provider_key=event.provider_key,
                provider_type=event.provider_type, requested_model=event.requested_model, model=event.model,
                endpoint=event.endpoint, status=event.status, error_type=event.error_type or "",
                stream=event.stream, latency_ms=event.latency_ms, ttft_ms=event.ttft_ms,
                prompt_tokens=event.prompt_tokens, completion_tokens=event.completion_tokens,
                total_tokens=event.total_tokens, cached_tokens=event.cached_tokens,
                reasoning_tokens=event.reasoning_tokens, usage_source=event.usage_source, cost=cost,
                cache_write_tokens=event.cache_write_tokens, cost_source=source, cache=event.cache or "",
                cost_saved_usd=event.cost_saved_usd, labels=event.labels, user=event.user,
                images=event.images, audio_seconds=audio_seconds(event.audio_seconds), characters=event.characters,
            ))
        UsageEvent.objects.bulk_create(rows, batch_size=CHUNK)
        add_to_rollups(priced)
        _touch_keys([event for event, _ in priced])
    return len(new), len(events) - len(new)


ADDITIVE = ("requests", "errors", "estimated_requests", "unpriced_requests", "cost_e10", "cache_hits",
            "cost_saved_e10", *TOKEN_FIELDS, *UNIT_FIELDS)


def add_to_rollups(priced: list[tuple[StreamEvent, Decimal | None]]) -> None:
    """Additive upsert: UPDATE … SET n = n + delta, INSERT when there is no row yet (drains are
    serialised, so the INSERT cannot race; the unique constraint would refuse it if it did)."""
    for (day, tenant_id, key_id, provider, model), row in aggregate(priced).items():
        match = {"day": day, "tenant_id": tenant_id, "api_key_id": key_id, "provider": provider, "model": model}
        updated = UsageDaily.objects.filter(**match).update(**{field: F(field) + row[field] for field in ADDITIVE})
        if not updated:
            UsageDaily.objects.create(**match, **row)


def _touch_keys(events: list[StreamEvent]) -> None:
    """ApiKey.last_used_at through .update(): no signal, so the gateway's key caches stay warm."""
    latest: dict[int, datetime] = defaultdict(lambda: datetime.min.replace(tzinfo=dt_timezone.utc))
    for event in events:
        if event.api_key_id:
            latest[event.api_key_id] = max(latest[event.api_key_id], event.created_at)
    for key_id, when in latest.items():
        ApiKey.objects.filter(pk=key_id).filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=when)).update(
            last_used_at=when)


# -- retention ---------------------------------------------------------------------------------------

def purge_old_events(days: int | None = None, chunk: int = 5000, max_chunks: int = 10_000) -> int:
    """Delete raw events older than USAGE_RETENTION_DAYS (roll-ups are kept); returns how many."""
    days = settings.USAGE_RETENTION_DAYS if days is None else days
    cutoff = timezone.now() - timedelta(days=days)
    deleted = 0
    for _ in range(max_chunks):
        ids = list(UsageEvent.objects.filter(created_at__lt=cutoff).order_by().values_list("id", flat=True)[:chunk])
        if not ids:
            break
        deleted += UsageEvent.objects.filter(id__in=ids).delete()[0]
    if deleted:
        log.info("usage retention: deleted %d events older than %d days", deleted, days)
    return deleted
