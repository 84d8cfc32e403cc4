"""The periodic reconciliation of the budget counters and its Celery task (scheduled by beat in
gomodel/celery.py); the soft-limit webhook's task is in webhooks.py."""

from datetime import datetime

from celery import shared_task
from django.conf import settings
from django.db import close_old_connections

from ..usage.stream import drain_lock, redis_client, release_drain_lock
from . import counters
from .services import all_budgets, base_for, set_bases_now
from .webhooks import check_soft_limits, send_budget_webhook

__all__ = ["reconcile_budgets", "send_budget_webhook"]


@shared_task(name="accounting.reconcile_budgets", ignore_result=True)
def reconcile_budgets() -> int:
    """Set the Redis budget counters' database part from the roll-ups (see `reconcile`)."""
    close_old_connections()
    client = redis_client()
    try:
        return reconcile(client)
    finally:
        client.close()
        close_old_connections()


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
        set_bases_now(client, bases)
        check_soft_limits(client, names)
        return len(names)
    finally:
        release_drain_lock(lock)
