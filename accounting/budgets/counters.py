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
- `reconcile` (tasks.py; Celery beat, BUDGET_RECONCILE_INTERVAL) SETs `base` from the database for every
  budgeted tenant and key, under the drain's lock so no batch is half-applied meanwhile. SET, not
  INCR: running it twice changes nothing; after a Redis flush it restores every spend.

Streams in flight add their running estimate to a third part, `…:inflight` (gomodel/gateway/budgets.py),
which the usage writer clears in the same MULTI that adds the final cost to `pending`.

A Redis restart keeps both (AOF, as the usage stream needs anyway). A flush loses the stream and its
`pending` together, and the next reconcile restores `base` from the database.

The budgets domain: counters.py (this module) holds the pure parts — periods, counter names, the
Budget a row sets (a tenant's, a key's, each end user's, each label value's: owners
`user_owner`'s text for the last two), the status a report shows; services.py the database's side (drained spend, `base`
set on a save); tasks.py the periodic reconciliation; webhooks.py the soft limit and its webhook;
reports.py the spend the admin and the management API show.
"""

import calendar
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

from django.conf import settings

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


def counter(scope: str, owner_id: int | str, period: str, now: datetime) -> str:
    first = window(period, now)[0]
    return f"{prefix()}:{scope}:{owner_id}:{period}:{first.strftime('%Y%m%d') if first else '0'}"


def user_owner(tenant_id: int, user: str) -> str:
    """An end user's budget owner: its tenant and its id in hex (any printable id, no ':' in the name)."""
    return f"{tenant_id}.{user.encode().hex()}"


def parse_user_owner(owner: str) -> tuple[int, str]:
    tenant_id, _, user = owner.partition(".")
    return int(tenant_id), bytes.fromhex(user).decode()


def parse_counter(name: str) -> tuple[str, int | str, str, date | None] | None:
    """A counter name back into (scope, owner id, period, first day); None if it is not one. An end user's
    owner is `user_owner`'s text, a tenant's or key's its id."""
    head = prefix() + ":"
    if not name.startswith(head):
        return None
    parts = name[len(head):].split(":")
    if len(parts) != 4 or parts[0] not in ("tenant", "key", "user", "label") or parts[2] not in PERIODS:
        return None
    owner: int | str = parts[1]
    try:
        if parts[0] in ("user", "label"):  # a label's owner is written as a user's: tenant.hex("name:value")
            parse_user_owner(parts[1])
        elif parts[1].isdigit():
            owner = int(parts[1])
        else:
            return None
        first = None if parts[3] == "0" else datetime.strptime(parts[3], "%Y%m%d").date()
    except ValueError:
        return None
    return parts[0], owner, parts[2], first


@dataclass(frozen=True)
class Budget:
    # "tenant" | "key" | "user" (an end user of a tenant: its owner is `user_owner`'s text) | "label" (a label
    # value of a tenant: its owner is `user_owner(tenant, "name:value")`)
    scope: str
    owner_id: int | str
    limit_e10: int
    period: str
    soft_percent: int

    @property
    def limit_usd(self) -> Decimal:
        return Decimal(self.limit_e10).scaleb(-10)

    def counter(self, now: datetime) -> str:
        return counter(self.scope, self.owner_id, self.period, now)

    def for_user(self, user: str) -> "Budget":
        """A tenant's budget of each end user (owner: the tenant's id), as this end user's own."""
        return replace(self, owner_id=user_owner(int(self.owner_id), user))


def budget_of(scope: str, row) -> Budget | None:
    """The Budget a Tenant or ApiKey row sets, if any."""
    if row.budget_usd is None:
        return None
    soft = row.budget_soft_percent or settings.BUDGET_SOFT_LIMIT_PERCENT
    return Budget(scope, row.pk, int(Decimal(row.budget_usd) * E10), row.budget_period, int(soft))


def user_budget_of(tenant) -> Budget | None:
    """The budget a Tenant row gives each of its end users (owner: the tenant; `for_user` names the user)."""
    if tenant.user_budget_usd is None:
        return None
    soft = tenant.budget_soft_percent or settings.BUDGET_SOFT_LIMIT_PERCENT
    return Budget("user", tenant.pk, int(Decimal(tenant.user_budget_usd) * E10), tenant.user_budget_period, int(soft))


def label_budgets_of(tenant) -> tuple[tuple[str, str, Budget], ...]:
    """A Tenant row's budgets per label value (validated when saved) as (name, value, Budget) each."""
    found = []
    raw = tenant.label_budgets if isinstance(tenant.label_budgets, dict) else {}
    soft = int(tenant.budget_soft_percent or settings.BUDGET_SOFT_LIMIT_PERCENT)
    for label, spec in raw.items():
        name, colon, value = str(label).partition(":")
        if colon and isinstance(spec, dict) and "usd" in spec:
            limit = int(Decimal(str(spec["usd"])) * E10)
            found.append((name, value, Budget("label", user_owner(tenant.pk, label), limit,
                                              spec.get("period", MONTHLY), soft)))
    return tuple(found)


def attribution_budget(group_by: str, owner: str | None, user_budget: "Budget | None",
                       label_budgets: tuple) -> "Budget | None":
    """The budget of a `/v1/usage?group_by=label|user` row (`owner`: its `name:value` or end user), if any."""
    if owner is None:
        return None
    if group_by == "user":
        return user_budget.for_user(owner) if user_budget is not None else None
    if group_by == "label":
        return next((budget for name, value, budget in label_budgets if f"{name}:{value}" == owner), None)
    return None


def label_of(budget: Budget) -> str:
    """A label budget's `name:value`."""
    return parse_user_owner(str(budget.owner_id))[1]


def budgets_of(key) -> tuple[Budget, ...]:
    """A key's own budget and its tenant's (the hot path caches these with the key)."""
    return tuple(b for b in (budget_of("tenant", key.tenant), budget_of("key", key)) if b is not None)


def usd(e10: int) -> str:
    value = Decimal(e10).scaleb(-10).normalize()
    return format(value, "f") if value else "0"


def status(budget: Budget, spent: int, now: datetime) -> dict:
    """A budget as `GET /v1/usage` (and the management API's tenant usage) shows it."""
    first, _ = window(budget.period, now)
    end = period_end(budget.period, now)
    return {"limit_usd": usd(budget.limit_e10), "spent_usd": usd(spent),
            "remaining_usd": usd(max(0, budget.limit_e10 - spent)), "period": budget.period,
            "period_start": first.isoformat() if first else None, "period_end": end.isoformat() if end else None,
            "soft_limit_percent": budget.soft_percent, "exceeded": spent >= budget.limit_e10}
