"""The soft-limit webhook: a Celery task that POSTs the notice to BUDGET_WEBHOOK_URL, signed
(X-GoModel-Signature: sha256=HMAC(secret, body)), retried with backoff. Enqueued by
`services.check_soft_limits`; imports nothing of the budgets domain, so the services can enqueue it
without an import cycle."""

import hashlib
import hmac
import logging

import httpx
import orjson
from celery import shared_task
from django.conf import settings

log = logging.getLogger(__name__)


class WebhookRefused(Exception):
    """The webhook receiver answered, but not with a 2xx: retried."""


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
