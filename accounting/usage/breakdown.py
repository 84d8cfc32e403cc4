"""`/v1/usage` by label or by end user, and filtered by them (`?group_by=label|user`, `?label=team:search`,
`?user=u-42`).

The daily roll-ups know neither labels nor users, so these answers are summed from the stored events
(`UsageEvent`) plus the events not drained yet, in one database snapshot as reports.py does (an undrained
event already stored is skipped): each event's own stored cost, in the roll-ups' unit of 1e-10 USD, so
the totals equal the events' to the digit. Stored events are kept USAGE_RETENTION_DAYS; older days have
no breakdown (their roll-ups still answer the plain report).

An event with several labels counts once in each of its labels' rows (so those rows add up to more than
the totals); events without a label (or without a user) make the row whose `label` (`user`) is null.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any

from django.db import connection, transaction

from ..labels import LabelError, check_user, parse_labels
from ..models import UsageEvent
from ..prices.book import PriceBook, event_price, to_e10
from ..prices.money import cost_string
from ..prices.units import audio_seconds
from .events import StreamEvent
from .rollups import UNIT_FIELDS, with_saving

GROUPS = ("", "label", "user")  # "": the plain report's rows (day × provider × model × key)
FIELDS = ("requests", "prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "reasoning_tokens")
STORED = ("request_id", "created_at", "provider", "model", "api_key_id", "api_key_prefix", "prompt_tokens",
          "completion_tokens", "total_tokens", "cached_tokens", "reasoning_tokens", "cost", "cache",
          "cost_saved_usd", "labels", "user", "images", "audio_seconds", "characters")


class BreakdownError(ValueError):
    def __init__(self, message: str, param: str):
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class Breakdown:
    group_by: str = ""
    label: tuple[str, str] | None = None  # only events carrying this label (name, value)
    user: str | None = None  # only this end user's events

    @property
    def plain(self) -> bool:
        """The roll-ups answer it (no label or user involved)."""
        return not self.group_by and self.label is None and self.user is None


PLAIN = Breakdown()


def parse_breakdown(query: dict[str, str]) -> Breakdown:
    """`group_by`, `label` and `user` of a usage query; BreakdownError naming the parameter."""
    group_by = query.get("group_by", "")
    if group_by not in GROUPS:
        raise BreakdownError("'group_by' must be 'label' or 'user'.", "group_by")
    label = None
    if "label" in query:
        try:
            [(name, value)] = parse_labels(query["label"], "label").items()
        except LabelError as err:
            raise BreakdownError(str(err), "label") from None
        except ValueError:
            raise BreakdownError("'label' must be one label, written as name:value.", "label") from None
        label = (name, value)
    user = None
    if "user" in query:
        try:
            user = check_user(query["user"], "user")
        except LabelError as err:
            raise BreakdownError(str(err), "user") from None
    return Breakdown(group_by, label, user)


@dataclass(slots=True)
class _Fact:
    """One event as the breakdown sums it (a stored row or an undrained event)."""

    day: date
    provider: str
    model: str
    key_id: int | None
    prefix: str
    counts: tuple[int, ...]  # FIELDS after "requests"
    cost_e10: int
    priced: bool
    cache: bool
    saved_e10: int
    labels: dict[str, str]
    user: str
    units: tuple[int, int, int] = (0, 0, 0)  # UNIT_FIELDS: images, audio milliseconds, characters


def _stored(tenant_id: int, first: date, last: date) -> Iterator[tuple[str, _Fact]]:
    start = datetime.combine(first, time.min, dt_timezone.utc)
    end = datetime.combine(last + timedelta(days=1), time.min, dt_timezone.utc)
    rows = UsageEvent.objects.filter(tenant_id=tenant_id, created_at__gte=start, created_at__lt=end)
    for row in rows.order_by().values_list(*STORED).iterator(chunk_size=2000):
        (request_id, created_at, provider, model, key_id, prefix, *counts, cost, cache, saved, labels, user,
         images, seconds, characters) = row
        yield request_id, _Fact(created_at.astimezone(dt_timezone.utc).date(), provider, model, key_id, prefix,
                                tuple(counts), to_e10(cost), cost is not None, bool(cache), to_e10(saved),
                                labels if isinstance(labels, dict) else {}, user,
                                (images, int(seconds * 1000), characters))


def _fresh(event: StreamEvent, cost: Decimal | None) -> _Fact:
    return _Fact(event.day, event.provider, event.model, event.api_key_id, event.api_key_prefix,
                 tuple(getattr(event, f) for f in FIELDS[1:]), to_e10(cost), cost is not None, bool(event.cache),
                 to_e10(Decimal(event.cost_saved_usd)) if event.cost_saved_usd is not None else 0, event.labels,
                 event.user, (event.images, int(audio_seconds(event.audio_seconds) * 1000), event.characters))


def _facts(tenant_id: int, first: date, last: date, pending: list[StreamEvent]) -> list[_Fact]:
    """The stored events of the range and the undrained ones not stored yet, read in one snapshot."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql" and outermost:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        facts, stored = [], set()
        for request_id, fact in _stored(tenant_id, first, last):
            stored.add(request_id)
            facts.append(fact)
        unique: dict[str, StreamEvent] = {}
        for event in pending:
            if event.request_id not in stored:
                unique.setdefault(event.request_id, event)
        # An undrained event the drain stored after its own day's range is not in `stored`: check them all.
        ids = list(unique)
        for i in range(0, len(ids), 500):
            for request_id in UsageEvent.objects.filter(request_id__in=ids[i:i + 500]).values_list(
                    "request_id", flat=True):
                unique.pop(request_id, None)
        if unique:
            prices = PriceBook.load()
            for event in unique.values():
                event = with_saving(prices, event)
                facts.append(_fresh(event, event_price(prices, event)[0]))
    return facts


def _keys(view: Breakdown, fact: _Fact) -> list[tuple]:
    if view.group_by == "label":
        return [(f"{name}:{value}",) for name, value in fact.labels.items()] or [(None,)]
    if view.group_by == "user":
        return [(fact.user or None,)]
    return [(fact.day.isoformat(), fact.provider, fact.model, fact.key_id)]


def _sums() -> dict[str, Any]:
    return {**{field: 0 for field in FIELDS}, "cache_hits": 0, "_cost_e10": 0, "_priced": 0, "_saved_e10": 0,
            **{field: 0 for field in UNIT_FIELDS}}


def _new_row(view: Breakdown, key: tuple, fact: _Fact) -> dict[str, Any]:
    if view.group_by:
        return {view.group_by: key[0], **_sums()}
    return {"date": key[0], "provider": fact.provider, "model": fact.model, "api_key": fact.prefix, **_sums()}


def _add(row: dict[str, Any], fact: _Fact) -> None:
    row["requests"] += 1
    for field, count in zip(FIELDS[1:], fact.counts):
        row[field] += count
    for field, count in zip(UNIT_FIELDS, fact.units):
        row[field] += count
    row["cache_hits"] += fact.cache
    row["_cost_e10"] += fact.cost_e10
    row["_priced"] += fact.priced
    row["_saved_e10"] += fact.saved_e10


def _money(row: dict[str, Any], empty_cost: str | None) -> dict[str, Any]:
    row["cost_usd"] = cost_string(row.pop("_cost_e10"), row.pop("_priced")) if row["requests"] else empty_cost
    row["cost_saved_usd"] = cost_string(row.pop("_saved_e10"), 1)
    row["audio_seconds"] = row.pop("audio_ms") / 1000
    return row


def breakdown_report(tenant_id: int, tenant_slug: str, first: date, last: date, pending: list[StreamEvent],
                     view: Breakdown) -> dict:
    """The usage report of the events matching `view`'s filters, its rows grouped as it asks."""
    rows: dict[tuple, dict[str, Any]] = {}
    totals = _sums()
    for fact in _facts(tenant_id, first, last, pending):
        if view.user is not None and fact.user != view.user:
            continue
        if view.label is not None and fact.labels.get(view.label[0]) != view.label[1]:
            continue
        _add(totals, fact)
        for key in _keys(view, fact):
            row = rows.get(key)
            if row is None:
                row = rows[key] = _new_row(view, key, fact)
            _add(row, fact)
    if view.group_by:  # the largest spend first, then the most requests; null (unlabelled) rows last
        data = sorted(rows.values(), key=lambda r: (r[view.group_by] is None, -r["_cost_e10"], -r["requests"],
                                                    r[view.group_by] or ""))
    else:
        data = sorted(rows.values(), key=lambda r: (r["date"], r["provider"], r["model"], r["api_key"] or ""))
    report: dict[str, Any] = {"object": "usage", "tenant": tenant_slug, "start": first.isoformat(),
                              "end": last.isoformat(), "totals": _money(totals, "0"),
                              "data": [_money(row, None) for row in data]}
    if view.group_by:
        report["group_by"] = view.group_by
    filters = {name: value for name, value in (("label", view.label and ":".join(view.label)),
                                               ("user", view.user)) if value is not None}
    if filters:
        report["filters"] = filters
    return report
