"""Celery tasks of the usage pipeline (scheduled by beat in gomodel/celery.py)."""

import hashlib
import hmac
import logging

import httpx
import orjson
from celery import shared_task
from django.conf import settings
from django.db import close_old_connections

from . import drain as usage_drain

log = logging.getLogger(__name__)


class WebhookRefused(Exception):
    """The webhook receiver answered, but not with a 2xx: retried."""


@shared_task(name="accounting.drain_usage", ignore_result=True)
def drain_usage() -> dict:
    """Drain the usage stream into UsageEvent rows and daily roll-ups (see accounting/drain.py)."""
    close_old_connections()
    try:
        return usage_drain.drain().as_dict()
    finally:
        close_old_connections()


@shared_task(name="accounting.purge_usage_events", ignore_result=True)
def purge_usage_events() -> int:
    """Delete raw usage events older than USAGE_RETENTION_DAYS; the daily roll-ups stay."""
    close_old_connections()
    try:
        return usage_drain.purge_old_events()
    finally:
        close_old_connections()


@shared_task(name="accounting.reconcile_budgets", ignore_result=True)
def reconcile_budgets() -> int:
    """Set the Redis budget counters' database part from the roll-ups (see accounting/budgets.py)."""
    from . import budgets

    close_old_connections()
    client = usage_drain.redis_client()
    try:
        return budgets.reconcile(client)
    finally:
        client.close()
        close_old_connections()


@shared_task(name="accounting.send_budget_webhook", bind=True, ignore_result=True, max_retries=8,
             autoretry_for=(OSError, httpx.HTTPError, WebhookRefused), retry_backoff=True, retry_backoff_max=600)
def send_budget_webhook(self, payload: dict) -> int | None:
    """POST the soft-limit notice to BUDGET_WEBHOOK_URL, signed: X-GoModel-Signature: sha256=HMAC(secret, body)."""
    url = settings.BUDGET_WEBHOOK_URL
    if not url:
        log.info("budget soft limit reached (no BUDGET_WEBHOOK_URL set): %s", payload)
        return None
    body = orjson.dumps(payload)
    signature = hmac.new(settings.BUDGET_WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    response = httpx.post(url, content=body, timeout=10.0, headers={
        "content-type": "application/json", "x-gomodel-signature": f"sha256={signature}",
        "x-gomodel-event": payload.get("event", "")})
    if response.status_code >= 300:
        raise WebhookRefused(f"budget webhook answered HTTP {response.status_code}")
    return response.status_code


@shared_task(name="accounting.purge_expired_responses", ignore_result=True)
def purge_expired_responses() -> int:
    """Delete stored /v1/responses answers past RESPONSES_RETENTION_DAYS."""
    from .responses_store import purge_expired_responses as purge

    close_old_connections()
    try:
        return purge()
    finally:
        close_old_connections()
