"""Celery tasks of the budgets (scheduled by beat in gomodel/celery.py); the soft-limit webhook's task
is in webhooks.py."""

from celery import shared_task
from django.db import close_old_connections

from ..usage.stream import redis_client
from . import services
from .webhooks import send_budget_webhook

__all__ = ["reconcile_budgets", "send_budget_webhook"]


@shared_task(name="accounting.reconcile_budgets", ignore_result=True)
def reconcile_budgets() -> int:
    """Set the Redis budget counters' database part from the roll-ups (see accounting/budgets/services.py)."""
    close_old_connections()
    client = redis_client()
    try:
        return services.reconcile(client)
    finally:
        client.close()
        close_old_connections()
