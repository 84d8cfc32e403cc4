"""`GET /v1/usage` (a tenant's tokens and cost, from the roll-ups plus what is not drained yet) and
`GET /metrics` (Prometheus). Neither is on the chat hot path: both may hop to a thread for the ORM."""

import asyncio
import hmac
import logging
import re
from urllib.parse import parse_qs

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings

from accounting.budgets.counters import budget_of, label_budgets_of, user_budget_of
from accounting.usage import metrics as usage_metrics
from accounting.usage import spool as usage_spool
from accounting.usage.breakdown import BreakdownError, parse_breakdown
from accounting.usage.reports import ReportError, parse_range, resolve_tenant, tenant_report, today_utc

from . import metrics
from .budgets import budget_status, row_budgets
from .errors import AUTHENTICATION, INVALID_REQUEST, NOT_FOUND, GatewayError
from .http import Request
from .limits import rate_limit_report
from .runtime import get_runtime

log = logging.getLogger(__name__)
SLUG = re.compile(r"[-a-zA-Z0-9_]{1,64}")  # a tenant slug; anything else (a NUL byte…) is no tenant


def _query(req: Request) -> dict[str, str]:
    parsed = parse_qs(req.scope.get("query_string", b"").decode("latin-1"))
    return {name: values[-1] for name, values in parsed.items() if values}


async def usage(req: Request):
    runtime = get_runtime()
    principal = await runtime.keys.authenticate(req.headers)
    query = _query(req)
    try:
        first, last = parse_range(query.get("start"), query.get("end"), today_utc())
    except ReportError as err:
        raise GatewayError(400, INVALID_REQUEST, str(err), err.param, "invalid_date_range") from None
    try:
        view = parse_breakdown(query)  # ?group_by=label|user, ?label=name:value, ?user=…
    except BreakdownError as err:
        raise GatewayError(400, INVALID_REQUEST, str(err), err.param, "invalid_usage_query") from None
    if principal.is_master:
        slug = query.get("tenant")
        if not slug:
            raise GatewayError(400, INVALID_REQUEST, "The master key belongs to no tenant: add ?tenant=<slug>.",
                               "tenant", "missing_tenant")
        tenant = await sync_to_async(resolve_tenant, thread_sensitive=True)(slug) if SLUG.fullmatch(slug) else None
        if tenant is None:
            raise GatewayError(404, NOT_FOUND, f"No tenant '{slug[:64]}'.", "tenant", "tenant_not_found")
        tenant_id, tenant_slug = tenant.id, tenant.slug
        owned = tuple(b for b in (budget_of("tenant", tenant),) if b is not None)
        user_budget: object = user_budget_of(tenant)
        label_budgets = label_budgets_of(tenant)
    else:
        tenant = None
        # not the master key: a tenant's key, so both are set
        assert principal.tenant_id is not None and principal.tenant_slug is not None
        tenant_id, tenant_slug = principal.tenant_id, principal.tenant_slug
        owned = principal.budgets
        user_budget, label_budgets = principal.user_budget, principal.label_budgets
    # One hop for the stream scan and the database (not the chat hot path); Redis down only loses the last seconds.
    report = await sync_to_async(tenant_report, thread_sensitive=True)(tenant_id, tenant_slug, first, last,
                                                                     view=view)
    report["rate_limits"] = await rate_limit_report(runtime, principal, tenant)
    if view.group_by:  # the budget of each budgeted label value or end user, on its row
        await row_budgets(runtime, report["data"], view.group_by, user_budget, label_budgets)
    try:
        report["budget"] = await budget_status(runtime, owned)
    except Exception as exc:  # Redis down: the report still answers, without the live spend
        log.warning("/v1/usage could not read the budget counters (%s)", exc)
        report["budget"] = None
    await req.respond(200, orjson.dumps(report))


def _metrics_caller_allowed(presented: str) -> bool:
    """/metrics names providers, models and volumes: METRICS_TOKEN or the master key, compared in constant
    time; an unset one never matches."""
    scheme, _, token = presented.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    allowed = False
    for secret in (settings.METRICS_TOKEN, settings.GOMODEL_MASTER_KEY):
        if secret:
            allowed |= hmac.compare_digest(token.encode(), secret.encode())
    return allowed


async def prometheus_metrics(req: Request):
    if not settings.METRICS_PUBLIC and not _metrics_caller_allowed(req.header(b"authorization") or ""):
        raise GatewayError(401, AUTHENTICATION, "Send 'Authorization: Bearer <METRICS_TOKEN>' (or the master "
                                                "key); METRICS_PUBLIC=1 opens /metrics to anyone.",
                           code="invalid_metrics_token")
    runtime = get_runtime()
    try:
        async with asyncio.timeout(2.0):
            state = await usage_metrics.stream_state(runtime.redis)
    except Exception as exc:
        log.warning("/metrics could not read the usage stream (%s)", exc)
        state = None
    # Off the loop: rendering grows with the number of series (and, multi-process, reads their files).
    spool = (usage_spool.spool_size(), usage_spool.spool_bytes())  # O(1) each
    body, content_type = await asyncio.to_thread(metrics.render, state, *spool)
    await req.start(200, [(b"content-type", content_type.encode())])
    await req.finish(body)
