"""One access log line per /v1 call (logger `gomodel.access`, ACCESS_LOG=0 turns it off): who called, what,
where it went, how it ended, what it cost — never a credential or a body. With LOG_FORMAT=json the line is a
JSON object with these fields; in text, `key=value` pairs. Written from the call's usage event, so it says
exactly what was billed; the handler only queues it (a thread writes), nothing waits on the event loop."""

import logging
import time

from django.conf import settings

log = logging.getLogger("gomodel.access")


def fields(event) -> dict:
    return {
        "request_id": event.request_id, "tenant": event.tenant, "key_prefix": event.api_key_prefix,
        "endpoint": event.endpoint, "model": event.model, "requested_model": event.requested_model,
        "provider": event.provider, "status": event.status, "error_type": event.error_type, "stream": event.stream,
        "prompt_tokens": event.prompt_tokens, "completion_tokens": event.completion_tokens,
        "usage_source": event.usage_source, "cost_usd": event.cost, "latency_ms": event.latency_ms,
        "ttft_ms": event.ttft_ms,
    }


def record(event) -> None:
    if not settings.ACCESS_LOG or not log.isEnabledFor(logging.INFO):
        return
    line = fields(event)
    message = " ".join(f"{name}={value}" for name, value in line.items() if value is not None)
    log.info(message, extra={"fields": line})


def refused(req, principal, error) -> None:
    """A call answered before any upstream attempt (401, 400, 403, 404, 429 …): no usage event, one line."""
    if not settings.ACCESS_LOG or not log.isEnabledFor(logging.INFO):
        return
    line = {"request_id": req.request_id, "tenant": getattr(principal, "tenant_slug", None),
            "key_prefix": getattr(principal, "key_prefix", None), "endpoint": req.path[:200], "status": error.status,
            "error_type": error.type, "error_code": error.code,
            "latency_ms": round((time.perf_counter() - req.started) * 1000, 3)}
    message = " ".join(f"{name}={value}" for name, value in line.items() if value is not None)
    log.info(message, extra={"fields": line})
