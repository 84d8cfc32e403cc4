"""The daily roll-ups' key and sums: what the drain adds to `UsageDaily`, and what `/v1/usage` adds for
events not drained yet (reports.py). Apart from the drain, so that the gateway's `/v1/usage` reads it
without importing the drain (and, through it, the budgets' Celery tasks)."""

from decimal import Decimal

from ..models import UsageSource
from ..prices.book import PriceBook, to_e10
from ..prices.units import audio_seconds
from .events import TOKEN_FIELDS, StreamEvent

UNIT_FIELDS = ("images", "audio_ms", "characters")  # UsageDaily's sums of media units


def with_saving(prices: PriceBook, event: StreamEvent) -> StreamEvent:
    """A cache hit (cost 0) with `cost_saved_usd`: its tokens as served, priced as its provider charges them."""
    if not event.cache or event.cost_saved_usd is not None:
        return event
    saved = prices.price(event.replace(cost=None, cost_source=None), event.created_at).cost
    return event.replace(cost_saved_usd=str(saved) if saved is not None else None)


def rollup_key(event: StreamEvent) -> tuple:
    return (event.day, event.tenant_id, event.api_key_id, event.provider, event.model)


def aggregate(priced: list[tuple[StreamEvent, Decimal | None]]) -> dict[tuple, dict]:
    """Sum (event, cost) pairs per roll-up key (the same sums `/v1/usage` adds for events not drained yet)."""
    totals: dict[tuple, dict] = {}
    for event, cost in priced:
        key = rollup_key(event)
        row = totals.get(key)
        if row is None:
            row = totals[key] = {"tenant_slug": event.tenant, "api_key_prefix": event.api_key_prefix,
                                 "provider_type": event.provider_type, "requests": 0, "errors": 0,
                                 "estimated_requests": 0, "unpriced_requests": 0, "cost_e10": 0,
                                 "cache_hits": 0, "cost_saved_e10": 0, **{field: 0 for field in TOKEN_FIELDS},
                                 **{field: 0 for field in UNIT_FIELDS}}
        row["requests"] += 1
        row["errors"] += event.status != 200
        row["estimated_requests"] += event.usage_source == UsageSource.ESTIMATED
        row["unpriced_requests"] += cost is None
        row["cost_e10"] += to_e10(cost)
        if event.cache:
            row["cache_hits"] += 1
            if event.cost_saved_usd is not None:
                row["cost_saved_e10"] += to_e10(Decimal(event.cost_saved_usd))
        for field in TOKEN_FIELDS:
            row[field] += getattr(event, field)
        row["images"] += event.images
        row["characters"] += event.characters
        row["audio_ms"] += int(audio_seconds(event.audio_seconds) * 1000)
    return totals
