"""The data behind `GET /v1/usage`: a tenant's daily roll-ups plus its events not drained yet.

Freshness without double counting: `tenant_report` reads the stream first (events still waiting for
the drain, `undrained_entries`), then `usage_report` reads, in ONE database snapshot, which of those
are already stored and the roll-ups. An event the drain committed before that snapshot is in the
roll-ups and skipped from the stream; one it had not is counted from the stream and absent from the
roll-ups. (A drain deletes an entry from the stream only after its commit, so an event is never in
neither.)
"""

import calendar
import logging
from datetime import date, datetime
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any, cast

import redis
from django.conf import settings
from django.db import connection, transaction

from ..models import Tenant, UsageDaily, UsageEvent
from ..prices.book import PriceBook, event_price
from ..prices.money import cost_string
from . import estimate
from . import events as usage_event
from .breakdown import PLAIN, Breakdown, breakdown_report
from .events import StreamEvent
from .rollups import UNIT_FIELDS, aggregate, with_saving

log = logging.getLogger(__name__)
SCAN_PAGE = 1000

FIELDS = ("requests", "prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "reasoning_tokens")
MAX_DAYS = 366


class ReportError(ValueError):
    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


def parse_range(start: str | None, end: str | None, today: date) -> tuple[date, date]:
    """`?start=&end=` (inclusive, UTC days); both default to this calendar month."""
    first = parse_day(start, "start") if start else None
    last = parse_day(end, "end") if end else None
    if first is None:  # the first day of the end's month, or of this month
        first = (last or today).replace(day=1)
    if last is None:  # the last day of the start's month (this month's when neither is given)
        last = first.replace(day=calendar.monthrange(first.year, first.month)[1])
    if last < first:
        raise ReportError("'end' must not be before 'start'.", "end")
    if (last - first).days >= MAX_DAYS:
        raise ReportError(f"The range may span at most {MAX_DAYS} days.", "end")
    return first, last


def parse_day(value: str, param: str) -> date:
    """A YYYY-MM-DD query parameter, or a ReportError naming it."""
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
    except (TypeError, ValueError):
        pass
    raise ReportError(f"'{param}' must be a date as YYYY-MM-DD, not '{str(value)[:40]}'.", param)


def undrained_entries(client: redis.Redis | None = None) -> list:
    """The usage stream's entries not drained yet, oldest first (at most USAGE_API_SCAN_LIMIT); what was
    read so far when Redis does not answer (the roll-ups still do; only the last seconds are missing)."""
    own = client is None
    entries: list = []
    try:
        client = client or redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2.0, socket_connect_timeout=2.0)
        start = "-"
        while len(entries) < settings.USAGE_API_SCAN_LIMIT:
            # redis-py types every protocol version and decoding at once; this client speaks RESP2, in bytes.
            page = cast(list[tuple[bytes, dict[bytes, bytes]]],
                        client.xrange(settings.USAGE_STREAM, min=start, count=SCAN_PAGE))
            entries.extend(fields for _, fields in page)
            if len(page) < SCAN_PAGE:
                break
            start = "(" + page[-1][0].decode()
    except redis.RedisError as exc:
        log.warning("usage report could not read the usage stream (%s); answering from the database only", exc)
    finally:
        if own and client is not None:
            client.close()
    return entries


def pending_events(raw_entries: list, tenant_id: int, first: date, last: date) -> list[StreamEvent]:
    """The stream entries that belong to this tenant and range, decoded as the drain would."""
    events = []
    for fields in raw_entries:
        raw = fields.get(b"e") if fields else None
        if raw is None:
            continue
        try:
            event = usage_event.decode(raw)
        except (ValueError, TypeError):
            continue
        if event.tenant_id == tenant_id and first <= event.day <= last:
            events.append(estimate.settle(event))  # counts a cut stream's tokens, as the drain will
    return events


def tenant_report(tenant_id: int, tenant_slug: str, first: date, last: date, entries: list | None = None,
                  view: Breakdown = PLAIN) -> dict:
    """`usage_report` over the roll-ups and the events not drained yet (`entries`: read from the stream
    unless given); by label or end user, or filtered by them, the stored events' sums instead (breakdown.py)."""
    entries = undrained_entries() if entries is None else entries
    pending = pending_events(entries, tenant_id, first, last)
    if view.plain:
        return usage_report(tenant_id, tenant_slug, first, last, pending)
    return breakdown_report(tenant_id, tenant_slug, first, last, pending, view)


def resolve_tenant(slug: str) -> Tenant | None:
    return Tenant.objects.filter(slug=slug).first()


def usage_report(tenant_id: int, tenant_slug: str, first: date, last: date, pending: list[StreamEvent]) -> dict:
    from django.db import close_old_connections

    close_old_connections()
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql" and outermost:
            with connection.cursor() as cursor:  # both reads below see the same committed state
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        unique: dict[str, StreamEvent] = {}
        for event in pending:
            unique.setdefault(event.request_id, event)
        stored: set[str] = set()
        ids = list(unique)
        for i in range(0, len(ids), 500):
            stored.update(UsageEvent.objects.filter(request_id__in=ids[i:i + 500]).values_list("request_id", flat=True))
        daily = list(UsageDaily.objects.filter(tenant_id=tenant_id, day__gte=first, day__lte=last))
        fresh = [event for request_id, event in unique.items() if request_id not in stored]
        priced: list[tuple[StreamEvent, Decimal | None]] = []  # the fresh events with their cost
        if fresh:
            prices = PriceBook.load()
            priced = [(with_saving(prices, event), event_price(prices, event)[0]) for event in fresh]

    rows: dict[tuple, dict] = {}

    def add(day, provider, model, key_id, prefix, values: dict, cost_e10: int, priced: int):
        row = rows.get((day, provider, model, key_id))
        if row is None:
            row = rows[(day, provider, model, key_id)] = {
                "date": day.isoformat(), "provider": provider, "model": model, "api_key": prefix,
                **{field: 0 for field in FIELDS}, "cache_hits": 0, "_cost_e10": 0, "_priced": 0, "_saved_e10": 0,
                **{field: 0 for field in UNIT_FIELDS}}
        for field in (*FIELDS, *UNIT_FIELDS):
            row[field] += values[field]
        row["cache_hits"] += values["cache_hits"]
        row["_cost_e10"] += cost_e10
        row["_priced"] += priced
        row["_saved_e10"] += values["cost_saved_e10"]

    for item in daily:
        add(item.day, item.provider, item.model, item.api_key_id, item.api_key_prefix,
            {field: getattr(item, field) for field in (*FIELDS, *UNIT_FIELDS, "cache_hits", "cost_saved_e10")},
            item.cost_e10, item.requests - item.unpriced_requests)
    for (day, _tenant, key_id, provider, model), values in aggregate(priced).items():
        add(day, provider, model, key_id, values["api_key_prefix"], values, values["cost_e10"],
            values["requests"] - values["unpriced_requests"])

    data = sorted(rows.values(), key=lambda r: (r["date"], r["provider"], r["model"], r["api_key"] or ""))
    totals: dict[str, Any] = {field: 0 for field in FIELDS}  # the counts, then "cost_usd" and "cost_saved_usd"
    totals["cache_hits"] = 0
    totals.update({field: 0 for field in UNIT_FIELDS})
    total_cost, total_priced, total_saved = 0, 0, 0
    for row in data:
        for field in (*FIELDS, *UNIT_FIELDS, "cache_hits"):
            totals[field] += row[field]
        row["audio_seconds"] = row.pop("audio_ms") / 1000  # media units: images, seconds of audio, characters
        total_cost += row["_cost_e10"]
        total_priced += row["_priced"]
        total_saved += row["_saved_e10"]
        row["cost_usd"] = cost_string(row.pop("_cost_e10"), row.pop("_priced"))
        row["cost_saved_usd"] = cost_string(row.pop("_saved_e10"), 1)
    # An empty period cost nothing: "0"; null stays for "requests, but no price known for them".
    totals["cost_usd"] = cost_string(total_cost, total_priced) if data else "0"
    totals["cost_saved_usd"] = cost_string(total_saved, 1)
    totals["audio_seconds"] = totals.pop("audio_ms") / 1000
    return {"object": "usage", "tenant": tenant_slug, "start": first.isoformat(), "end": last.isoformat(),
            "totals": totals, "data": data}


def today_utc() -> date:
    return datetime.now(dt_timezone.utc).date()
