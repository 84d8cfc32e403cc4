"""The soft limit: which counters reached it (`check_soft_limits`, run by the drain and the reconciliation,
in the worker) and the Celery task that POSTs the notice to BUDGET_WEBHOOK_URL, signed
(X-GoModel-Signature: sha256=HMAC(secret, body)), retried with backoff."""

import hashlib
import hmac
import logging
from datetime import datetime, time, timezone
from typing import Any

import httpx
import orjson
from celery import shared_task
from django.conf import settings

from ..models import ApiKey, Tenant
from .counters import budget_of, label_budgets_of, parse_counter, parse_user_owner, period_end, usd, user_budget_of
from .services import spent_e10, ttl_seconds

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


def first_at(first) -> datetime:
    """A period's first instant (a total period, none: now)."""
    return datetime.combine(first, time.min, tzinfo=timezone.utc) if first else datetime.now(timezone.utc)


def check_soft_limits(client, names: list[str]) -> int:
    """For each counter at or over its soft limit, mark it fired (SET NX) and enqueue one webhook;
    runs in the worker (drain and reconcile), never on the request path. Returns how many fired."""
    parsed = {name: p for name in names if (p := parse_counter(name)) is not None}
    if not parsed:
        return 0
    spent = spent_e10(client, list(parsed))
    fired = 0
    for name, (scope, owner_id, period, first) in parsed.items():
        user = label = None
        row: Any = None  # a Tenant or an ApiKey, as the scope says
        if scope == "label":  # a label value of a tenant: the tenant's budget of that label
            tenant_id, label = parse_user_owner(str(owner_id))
            row = Tenant.objects.filter(pk=tenant_id).first()
            budget = next((b for _, _, b in label_budgets_of(row) if b.counter(first_at(first)) == name), None) \
                if row is not None else None
        elif scope == "user":  # an end user of a tenant: the tenant's budget of each of its end users
            tenant_id, user = parse_user_owner(str(owner_id))
            row = Tenant.objects.filter(pk=tenant_id).first()
            template = user_budget_of(row) if row is not None else None
            budget = template.for_user(user) if template is not None else None
        else:
            model = Tenant if scope == "tenant" else ApiKey
            row = model.objects.filter(pk=owner_id).first()  # a Tenant or an ApiKey, as the scope says
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
            "tenant": row.slug if scope in ("tenant", "user", "label") else row.tenant.slug,
            "api_key_prefix": row.prefix if scope == "key" else None,
            "period": period,
            "period_start": first.isoformat() if first else None,
            "period_end": end.isoformat() if end else None,
            "limit_usd": usd(budget.limit_e10),
            "spent_usd": usd(spent[name]),
            "soft_limit_percent": budget.soft_percent,
            **({"user": user} if user is not None else {}),
            **({"label": label} if label is not None else {}),
        }
        try:
            send_budget_webhook.delay(payload)
        except Exception:  # the broker refused it: unmark, so that the next drain enqueues it again
            client.delete(name + ":soft-fired")
            log.exception("could not enqueue the budget webhook for %s", name)
            continue
        fired += 1
    return fired
