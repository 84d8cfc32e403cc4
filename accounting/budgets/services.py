"""Budgets, the database's side: drained spend from the roll-ups, the `base` part of the Redis counters
set from it (one budget on a save, under the drain's lock), the counters a batch of events touches.
Runs in the worker and on a save, never on the request path. How the counters work: counters.py; the
periodic reconciliation: tasks.py; the soft limit: webhooks.py. Imports no Celery (the web processes
load this module through the post_save signal)."""

import logging
from collections import defaultdict
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta, timezone

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Sum

from ..models import ApiKey, Tenant, UsageDaily, UsageEvent
from ..prices.book import to_e10
from ..usage.stream import drain_lock, redis_client, release_drain_lock
from . import counters
from .counters import Budget, budget_of, label_budgets_of, parse_counter, parse_user_owner, user_budget_of, window

log = logging.getLogger(__name__)


def db_spend_e10(scope: str, owner_id: int | str, first: date | None, end: date | None) -> int:
    """Drained spend of a tenant or key in [first, end) from the daily roll-ups, in 1e-10 USD; of an end user or
    a label value from its stored events (the roll-ups know neither), each event's cost in the roll-ups' unit."""
    if scope in ("user", "label"):
        tenant_id, user = parse_user_owner(str(owner_id))
        events = UsageEvent.objects.filter(tenant_id=tenant_id, cost__isnull=False)
        if scope == "user":
            events = events.filter(user=user)
        if first is not None:
            events = events.filter(created_at__gte=datetime.combine(first, time.min, tzinfo=timezone.utc),
                                   created_at__lt=datetime.combine(end or first, time.min, tzinfo=timezone.utc))
        if scope == "label":  # the events carrying this label value (jsonb containment first where there is one)
            name, _, value = user.partition(":")
            if connection.vendor == "postgresql":
                events = events.filter(labels__contains={name: value})
            return sum(to_e10(cost) for labels, cost in events.values_list("labels", "cost").iterator()
                       if isinstance(labels, dict) and labels.get(name) == value)
        return sum(to_e10(cost) for cost in events.values_list("cost", flat=True).iterator())
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
    assert end is not None  # a period with a first day has an end (only "total" has neither)
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
    names: set[str] = set()
    by_user: dict[int, dict[str, set]] = defaultdict(lambda: defaultdict(set))
    for event in events:
        if event.tenant_id and event.user:
            by_user[event.tenant_id][event.user].add(event.created_at)
    if by_user:
        for tenant in Tenant.objects.filter(pk__in=list(by_user), user_budget_usd__isnull=False):
            template = user_budget_of(tenant)
            assert template is not None  # user_budget_usd is set: filtered above
            for user, when in by_user[tenant.pk].items():
                names.update(template.for_user(user).counter(at) for at in when)
    labelled = defaultdict(list)
    for event in events:
        if event.tenant_id and event.labels:
            labelled[event.tenant_id].append(event)
    if labelled:  # the label budgets of the labels these events carry
        for tenant in Tenant.objects.filter(pk__in=list(labelled)).exclude(label_budgets={}):
            owned = label_budgets_of(tenant)
            for event in labelled[tenant.pk]:
                names.update(budget.counter(event.created_at) for name, value, budget in owned
                             if event.labels.get(name) == value)
    for scope, model, times in (("tenant", Tenant, by_tenant), ("key", ApiKey, by_key)):
        if times:
            for row in model.objects.filter(pk__in=list(times), budget_usd__isnull=False):
                budget = budget_of(scope, row)
                assert budget is not None  # budget_usd is set: filtered above
                names.update(budget.counter(when) for when in times[row.pk])
    return names


def all_budgets() -> list[Budget]:
    found = [budget_of("tenant", t) for t in Tenant.objects.filter(budget_usd__isnull=False, active=True)]
    found += [budget_of("key", k) for k in ApiKey.objects.filter(budget_usd__isnull=False, active=True)]
    for tenant in Tenant.objects.filter(user_budget_usd__isnull=False, active=True):
        found += user_budgets(tenant)
    for tenant in Tenant.objects.filter(active=True).exclude(label_budgets={}):
        found += [budget for _, _, budget in label_budgets_of(tenant)]
    return [b for b in found if b is not None]


def user_budgets(tenant: Tenant) -> list[Budget]:
    """The budgets of a tenant's end users who spent in the current period (the others' spend is 0)."""
    template = user_budget_of(tenant)
    if template is None:
        return []
    first = window(template.period, counters.clock())[0]
    assert first is not None  # an end user's budget period is never "total"
    since = datetime.combine(first, time.min, tzinfo=timezone.utc)
    users = (UsageEvent.objects.filter(tenant=tenant, created_at__gte=since).exclude(user="")
             .order_by().values_list("user", flat=True).distinct())
    return [template.for_user(user) for user in users]


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
            set_bases_now(client, {name: base_for(name)})
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
    if sender is Tenant and instance.user_budget_usd is not None:  # its end users' counters get their base now
        transaction.on_commit(lambda: [reconcile_one(each) for each in user_budgets(instance)])
    if sender is Tenant and instance.label_budgets:  # its label budgets' counters too
        transaction.on_commit(lambda: [reconcile_one(b) for _, _, b in label_budgets_of(instance)])


def set_bases(pipe, bases: Mapping[str, int | None]) -> None:
    """Queue the SETs of these `base` counters on `pipe` (the caller's MULTI)."""
    for name, value in bases.items():
        if value is not None:
            pipe.set(name + ":base", value, ex=ttl_seconds(name))


def set_bases_now(client, bases: Mapping[str, int | None]) -> None:
    pipe = client.pipeline(transaction=True)
    set_bases(pipe, bases)
    pipe.execute()


def spent_e10(client, names: list[str]) -> dict[str, int]:
    values = client.mget([n + suffix for n in names for suffix in (":base", ":pending")]) if names else []
    return {name: int(values[2 * i] or 0) + int(values[2 * i + 1] or 0) for i, name in enumerate(names)}
