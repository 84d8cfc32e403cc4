"""Celery's entry point for the accounting app (`autodiscover_tasks` imports `accounting.tasks`): the
tasks live with their domains; importing them here registers them. Task names are stable
(`accounting.<task>`), whatever module holds them."""

from .budgets.tasks import reconcile_budgets, send_budget_webhook
from .provider_batches.tasks import poll_batches
from .stored_responses.tasks import purge_expired_responses
from .usage.tasks import drain_usage, purge_usage_events

__all__ = ["drain_usage", "poll_batches", "purge_expired_responses", "purge_usage_events", "reconcile_budgets",
           "send_budget_webhook"]
