"""Budgets, the database's side: drained spend from the roll-ups, the reconciliation of the Redis
counters' `base` part (under the drain's lock), and the soft limit's webhook. Runs in the worker and
on a save, never on the request path. How the counters work: counters.py."""

import logging
from collections import defaultdict
from datetime import date, datetime, time, timedelta, timezone

from django.conf import settings
from django.db import transaction
from django.db.models import Sum

from ..models import ApiKey, Tenant, UsageDaily
from ..usage.stream import drain_lock, redis_client, release_drain_lock
from . import counters
from .counters import Budget, budget_of, parse_counter, period_end, usd, window
from .webhooks import send_budget_webhook

log = logging.getLogger(__name__)


def db_spend_e10(scope: str, owner_id: int, first: date | None, end: date | None) -> int:
    """Drained spend of a tenant or key in [first, end) from the daily roll-ups, in 1e-10 USD."""
    rows = UsageDaily.objects.filter(**{"tenant_id" if scope == "tenant" else "api_key_id": owner_id})
    if first is not None:
        rows = rows.filter(day__gte=first, day__lt=end)
    return int(rows.aggregate(total=Sum("cost_e10"))["total"] or 0)


def base_for(name: str) -> int | None:
    parsed = parse_counter(name)
    if parsed is None:
        return None
    scope, owner_id, period, first = parsed
    end = window(period, datetime.combine(first, time.min, tzinfo=timezone.utc))[1] if first else None
    return db_spend_e10(scope, owner_id, first, end)


def ttl_seconds(name: str) -> int | None:
    """Counters of a finished period expire a week after it ended; total ones never."""
    parsed = parse_counter(name)
    if parsed is None or parsed[3] is None:
        return None
    end = window(parsed[2], datetime.combine(parsed[3], time.min, tzinfo=timezone.utc))[1]
    end_at = datetime.combine(end, time.min, tzinfo=timezone.utc) + timedelta(days=7)
    return max(60, int((end_at - counters.clock()).total_seconds()))


def counters_of(events) -> set[str]:
    """The counters (for each event's own time) of the budgeted tenants and keys these events belong to."""
    by_tenant, by_key = defaultdict(set), defaultdict(set)
    for event in events:
        if event.tenant_id:
            by_tenant[event.tenant_id].add(event.created_at)
        if event.api_key_id:
            by_key[event.api_key_id].add(event.created_at)
    names = set()
    for scope, model, times in (("tenant", Tenant, by_tenant), ("key", ApiKey, by_key)):
        if times:
            for row in model.objects.filter(pk__in=list(times), budget_usd__isnull=False):
                budget = budget_of(scope, row)
                names.update(budget.counter(when) for when in times[row.pk])
    return names


def all_budgets() -> list[Budget]:
    found = [budget_of("tenant", t) for t in Tenant.objects.filter(budget_usd__isnull=False, active=True)]
    found += [budget_of("key", k) for k in ApiKey.objects.filter(budget_usd__isnull=False, active=True)]
    return [b for b in found if b is not None]


def reconcile(client, now: datetime | None = None) -> int:
    """SET every budgeted tenant's and key's `base` counter from the roll-ups (under the drain lock);
    returns how many were set, or -1 when a drain held the lock (the next run catches up)."""
    now = now or counters.clock()
    lock = drain_lock(client, settings.USAGE_DRAIN_LOCK_TTL)
    if not lock.acquire():
        return -1
    try:
        names = [b.counter(now) for b in all_budgets()]
        bases = {name: base_for(name) for name in names}
        _set_bases_now(client, bases)
        check_soft_limits(client, names)
        return len(names)
    finally:
        release_drain_lock(lock)


def reconcile_one(budget: Budget, client=None) -> bool:
    """SET one budget's `base` now (under the drain lock, skipped if a drain holds it: the periodic
    reconcile catches up). Never raises: a save must not fail because Redis is down."""
    own = client is None
    try:
        client = client or redis_client()
        lock = drain_lock(client, settings.USAGE_DRAIN_LOCK_TTL)
        if not lock.acquire():
            return False
        try:
            name = budget.counter(counters.clock())
            _set_bases_now(client, {name: base_for(name)})
            return True
        finally:
            release_drain_lock(lock)
    except Exception as exc:
        log.warning("could not set the budget counter of %s %s now (%s); the next reconcile will",
                    budget.scope, budget.owner_id, exc)
        return False
    finally:
        if own and client is not None:
            client.close()


def on_budget_saved(sender, instance, **kwargs):
    budget = budget_of("tenant" if sender is Tenant else "key", instance)
    if budget is not None:
        transaction.on_commit(lambda: reconcile_one(budget))


def set_bases(pipe, bases: dict[str, int | None]) -> None:
    """Queue the SETs of these `base` counters on `pipe` (the caller's MULTI)."""
    for name, value in bases.items():
        if value is not None:
            pipe.set(name + ":base", value, ex=ttl_seconds(name))


def _set_bases_now(client, bases: dict[str, int | None]) -> None:
    pipe = client.pipeline(transaction=True)
    set_bases(pipe, bases)
    pipe.execute()


def spent_e10(client, names: list[str]) -> dict[str, int]:
    values = client.mget([n + suffix for n in names for suffix in (":base", ":pending")]) if names else []
    return {name: int(values[2 * i] or 0) + int(values[2 * i + 1] or 0) for i, name in enumerate(names)}


def check_soft_limits(client, names: list[str]) -> int:
    """For each counter at or over its soft limit, mark it fired (SET NX) and enqueue one webhook;
    runs in the worker (drain and reconcile), never on the request path. Returns how many fired."""
    parsed = {name: parse_counter(name) for name in names}
    parsed = {name: p for name, p in parsed.items() if p is not None}
    if not parsed:
        return 0
    spent = spent_e10(client, list(parsed))
    fired = 0
    for name, (scope, owner_id, period, first) in parsed.items():
        model = Tenant if scope == "tenant" else ApiKey
        row = model.objects.filter(pk=owner_id).first()
        budget = budget_of(scope, row) if row is not None else None
        if budget is None or budget.period != period or not budget.limit_e10:
            continue
        if spent[name] * 100 < budget.limit_e10 * budget.soft_percent:
            continue
        if not client.set(name + ":soft-fired", "1", nx=True, ex=ttl_seconds(name)):
            continue
        end = period_end(period, datetime.combine(first, time.min, tzinfo=timezone.utc)) if first else None
        payload = {
            "event": "budget.soft_limit",
            "scope": scope,
            "tenant": row.slug if scope == "tenant" else row.tenant.slug,
            "api_key_prefix": row.prefix if scope == "key" else None,
            "period": period,
            "period_start": first.isoformat() if first else None,
            "period_end": end.isoformat() if end else None,
            "limit_usd": usd(budget.limit_e10),
            "spent_usd": usd(spent[name]),
            "soft_limit_percent": budget.soft_percent,
        }
        try:
            send_budget_webhook.delay(payload)
        except Exception:  # the broker refused it: unmark, so that the next drain enqueues it again
            client.delete(name + ":soft-fired")
            log.exception("could not enqueue the budget webhook for %s", name)
            continue
        fired += 1
    return fired
