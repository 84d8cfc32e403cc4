"""What the admin and the management API show of a budget: the spend this period (from Redis, or
from the roll-ups when Redis does not answer), the soft-limit mark, over budget."""

import logging

import redis
from django.conf import settings

from . import counters
from .counters import Budget, attribution_budget, budget_of, label_budgets_of, status, usd, user_budget_of, window
from .services import db_spend_e10

log = logging.getLogger(__name__)


def current_spend(budget: Budget, client=None) -> tuple[int, bool]:
    """(spent this period in 1e-10 USD, soft-limit webhook fired) from Redis; from the roll-ups (and
    `False`) when Redis does not answer."""
    now = counters.clock()
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


def tenant_status(tenant) -> dict:
    """`budget` of a tenant's usage report read outside the gateway (no key: `key` is null)."""
    budget = budget_of("tenant", tenant)
    if budget is None:
        return {"tenant": None, "key": None}
    return {"tenant": status(budget, current_spend(budget)[0], counters.clock()), "key": None}


def attribution_status(tenant, rows: list[dict], group_by: str) -> None:
    """The management API's usage by label or end user: each budgeted label value's or end user's row gets its
    `budget` (as `/v1/usage?group_by=` shows it); the other rows stay as they were."""
    user_budget, label_budgets = user_budget_of(tenant), label_budgets_of(tenant)
    now = counters.clock()
    for row in rows:
        budget = attribution_budget(group_by, row.get(group_by), user_budget, label_budgets)
        if budget is not None:
            row["budget"] = status(budget, current_spend(budget)[0], now)
