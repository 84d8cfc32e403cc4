"""Budgets: periods, the Redis spend counters, and their reconciliation from the roll-ups.

A budget (tenant or key) is a USD limit per period: daily, weekly (Monday 00:00 UTC), monthly
(calendar month, UTC) or total. What was spent in a period lives in Redis as two integers of
1e-10 USD (the roll-ups' unit, so Redis and the database agree to the last digit):

    <stream>:budget:<scope>:<id>:<period>:<start>:base     what the database holds (drained events)
    <stream>:budget:<scope>:<id>:<period>:<start>:pending  what the usage stream still holds

    spent = base + pending

- The gateway adds an event's cost to `pending` in the same MULTI as the event's XADD (and the
  spool replay does the same), so an event is in `pending` exactly while it is in the stream.
- The drain, after committing a batch, in one MULTI with the XACK/XDEL of that batch: subtracts each
  event's cost from `pending` and SETs `base` to the database's sum for the period. Both happen
  together, so an event is counted once: first in `pending`, then in `base`.
- `reconcile` (Celery beat, BUDGET_RECONCILE_INTERVAL) SETs `base` from the database for every
  budgeted tenant and key, under the drain's lock so no batch is half-applied meanwhile. SET, not
  INCR: running it twice changes nothing; after a Redis flush it restores every spend.

Streams in flight add their running estimate to a third part, `…:inflight` (gomodel/gateway/budgets.py),
which the usage writer clears in the same MULTI that adds the final cost to `pending`.

A Redis restart keeps both (AOF, as the usage stream needs anyway). A flush loses the stream and its
`pending` together, and the next reconcile restores `base` from the database.
"""

import calendar
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

from django.conf import settings
from django.db.models import Sum

log = logging.getLogger(__name__)

DAILY, WEEKLY, MONTHLY, TOTAL = "daily", "weekly", "monthly", "total"
PERIODS = (DAILY, WEEKLY, MONTHLY, TOTAL)
E10 = Decimal("1e10")


def clock() -> datetime:
    """Now, UTC (tests replace it to cross a period's end)."""
    return datetime.now(timezone.utc)


def window(period: str, now: datetime) -> tuple[date | None, date | None]:
    """[first day, first day of the next period) in UTC; (None, None) for total."""
    today = now.astimezone(timezone.utc).date()
    if period == DAILY:
        return today, today + timedelta(days=1)
    if period == WEEKLY:
        first = today - timedelta(days=today.weekday())
        return first, first + timedelta(days=7)
    if period == MONTHLY:
        first = today.replace(day=1)
        return first, first + timedelta(days=calendar.monthrange(first.year, first.month)[1])
    return None, None


def period_end(period: str, now: datetime) -> datetime | None:
    end = window(period, now)[1]
    return datetime.combine(end, time.min, tzinfo=timezone.utc) if end else None


def prefix() -> str:
    return settings.USAGE_STREAM + ":budget"


def counter(scope: str, owner_id: int, period: str, now: datetime) -> str:
    first = window(period, now)[0]
    return f"{prefix()}:{scope}:{owner_id}:{period}:{first.strftime('%Y%m%d') if first else '0'}"


def parse_counter(name: str) -> tuple[str, int, str, date | None] | None:
    """A counter name back into (scope, owner id, period, first day); None if it is not one."""
    head = prefix() + ":"
    if not name.startswith(head):
        return None
    parts = name[len(head):].split(":")
    if len(parts) != 4 or parts[0] not in ("tenant", "key") or parts[2] not in PERIODS or not parts[1].isdigit():
        return None
    try:
        first = None if parts[3] == "0" else datetime.strptime(parts[3], "%Y%m%d").date()
    except ValueError:
        return None
    return parts[0], int(parts[1]), parts[2], first


@dataclass(frozen=True)
class Budget:
    scope: str  # "tenant" | "key"
    owner_id: int
    limit_e10: int
    period: str
    soft_percent: int

    @property
    def limit_usd(self) -> Decimal:
        return Decimal(self.limit_e10).scaleb(-10)

    def counter(self, now: datetime) -> str:
        return counter(self.scope, self.owner_id, self.period, now)


def budget_of(scope: str, row) -> Budget | None:
    """The Budget a Tenant or ApiKey row sets, if any."""
    if row.budget_usd is None:
        return None
    soft = row.budget_soft_percent or settings.BUDGET_SOFT_LIMIT_PERCENT
    return Budget(scope, row.pk, int(Decimal(row.budget_usd) * E10), row.budget_period, int(soft))


def budgets_of(key) -> tuple[Budget, ...]:
    """A key's own budget and its tenant's (the hot path caches these with the key)."""
    return tuple(b for b in (budget_of("tenant", key.tenant), budget_of("key", key)) if b is not None)


# -- the database's side ------------------------------------------------------------------------------

def db_spend_e10(scope: str, owner_id: int, first: date | None, end: date | None) -> int:
    """Drained spend of a tenant or key in [first, end) from the daily roll-ups, in 1e-10 USD."""
    from .models import UsageDaily

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
    return max(60, int((end_at - clock()).total_seconds()))


def counters_of(events) -> set[str]:
    """The counters (for each event's own time) of the budgeted tenants and keys these events belong to."""
    from .models import ApiKey, Tenant

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
    from .models import ApiKey, Tenant

    found = [budget_of("tenant", t) for t in Tenant.objects.filter(budget_usd__isnull=False, active=True)]
    found += [budget_of("key", k) for k in ApiKey.objects.filter(budget_usd__isnull=False, active=True)]
    return [b for b in found if b is not None]


def reconcile(client, now: datetime | None = None) -> int:
    """SET every budgeted tenant's and key's `base` counter from the roll-ups (under the drain lock);
    returns how many were set, or -1 when a drain held the lock (the next run catches up)."""
    from .drain import DrainLock

    now = now or clock()
    lock = DrainLock(client, settings.USAGE_DRAIN_LOCK_TTL)
    if not lock.acquire():
        return -1
    try:
        names = [b.counter(now) for b in all_budgets()]
        bases = {name: base_for(name) for name in names}
        _set_bases_now(client, bases)
        check_soft_limits(client, names)
        return len(names)
    finally:
        lock.release()


def reconcile_one(budget: Budget, client=None) -> bool:
    """SET one budget's `base` now (under the drain lock, skipped if a drain holds it: the periodic
    reconcile catches up). Never raises: a save must not fail because Redis is down."""
    from .drain import DrainLock, redis_client

    own = client is None
    try:
        client = client or redis_client()
        lock = DrainLock(client, settings.USAGE_DRAIN_LOCK_TTL)
        if not lock.acquire():
            return False
        try:
            name = budget.counter(clock())
            _set_bases_now(client, {name: base_for(name)})
            return True
        finally:
            lock.release()
    except Exception as exc:
        log.warning("could not set the budget counter of %s %s now (%s); the next reconcile will",
                    budget.scope, budget.owner_id, exc)
        return False
    finally:
        if own and client is not None:
            client.close()


def on_budget_saved(sender, instance, **kwargs):
    from django.db import transaction

    from .models import Tenant

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


# -- the soft limit ------------------------------------------------------------------------------------

def check_soft_limits(client, names: list[str]) -> int:
    """For each counter at or over its soft limit, mark it fired (SET NX) and enqueue one webhook;
    runs in the worker (drain and reconcile), never on the request path. Returns how many fired."""
    from .models import ApiKey, Tenant

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
        from .tasks import send_budget_webhook

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


def usd(e10: int) -> str:
    value = Decimal(e10).scaleb(-10).normalize()
    return format(value, "f") if value else "0"


# -- what the admin shows -----------------------------------------------------------------------------

def current_spend(budget: Budget, client=None) -> tuple[int, bool]:
    """(spent this period in 1e-10 USD, soft-limit webhook fired) from Redis; from the roll-ups (and
    `False`) when Redis does not answer."""
    now = clock()
    name = budget.counter(now)
    try:
        pipe = (client or _shared_client()).pipeline(transaction=False)
        pipe.mget([name + ":base", name + ":pending"])
        pipe.exists(name + ":soft-fired")
        (base, pending), fired = pipe.execute()
        if base is None:  # not reconciled yet: the database's part from the database
            first, end = window(budget.period, now)
            base = db_spend_e10(budget.scope, budget.owner_id, first, end)
        return int(base) + int(pending or 0), bool(fired)
    except Exception as exc:  # the admin still shows the drained spend
        log.warning("budget counters unavailable for the admin (%s)", exc)
    first, end = window(budget.period, now)
    return db_spend_e10(budget.scope, budget.owner_id, first, end), False


_clients: dict = {}


def _shared_client():
    """One pooled client per REDIS_URL for the admin and the management API's spend columns."""
    import redis

    url = settings.REDIS_URL
    client = _clients.get(url)
    if client is None:
        client = _clients[url] = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
    return client


def describe(scope: str, row) -> tuple[str, str]:
    """(label, kind) for the admin: spend beside the limit, the soft-limit mark, over budget."""
    budget = budget_of(scope, row)
    if budget is None:
        return "no budget", ""
    spent, fired = current_spend(budget)
    share = spent / budget.limit_e10 if budget.limit_e10 else 1.0
    label = f"${usd(spent)} of ${usd(budget.limit_e10)} {budget.period} ({share:.0%})"
    if spent >= budget.limit_e10:
        return f"over budget: {label}", "bad"
    if fired or share * 100 >= budget.soft_percent:
        return f"soft limit ({budget.soft_percent} %) reached: {label}", "warn"
    return label, "ok"


def status(budget: Budget, spent: int, now: datetime) -> dict:
    """A budget as `GET /v1/usage` (and the management API's tenant usage) shows it."""
    first, _ = window(budget.period, now)
    end = period_end(budget.period, now)
    return {"limit_usd": usd(budget.limit_e10), "spent_usd": usd(spent),
            "remaining_usd": usd(max(0, budget.limit_e10 - spent)), "period": budget.period,
            "period_start": first.isoformat() if first else None, "period_end": end.isoformat() if end else None,
            "soft_limit_percent": budget.soft_percent, "exceeded": spent >= budget.limit_e10}


def tenant_status(tenant) -> dict:
    """`budget` of a tenant's usage report read outside the gateway (no key: `key` is null)."""
    budget = budget_of("tenant", tenant)
    if budget is None:
        return {"tenant": None, "key": None}
    return {"tenant": status(budget, current_spend(budget)[0], clock()), "key": None}
