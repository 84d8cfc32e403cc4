"""Sending a request upstream: failover across candidates, retries with backoff for non-streaming
calls, and a circuit breaker per provider config. Every attempt is noted on the usage record."""

import asyncio
from typing import NamedTuple

import orjson
from django.conf import settings

from providers.adapters import adapter_for
from providers.base import Target, UpstreamError, error_message

from . import quotas
from .errors import INVALID_REQUEST, PROVIDER, RATE_LIMIT, GatewayError
from .resilience import backoff_delay, retry_after_seconds
from .upstream_errors import (
    ConnectTimeout,
    DeadlineExceeded,
    HTTPError,
    PoolTimeout,
    ReadTimeout,
    ResponseTooLarge,
    TimeoutException,
    WriteTimeout,
)
from .usage_record import UsageRecord

RETRY_STATUSES = frozenset((429, 502, 503, 504))


KEY_STATUSES = frozenset((429, 401, 403))  # what one key of a pool earns (cool-down, rejection), not its config


async def send_upstream(runtime, chain: list[tuple[Target, str]], build, stream: bool, record: UsageRecord,
                        body: dict | None = None):
    """Try each (target, model) in order until one answers 2xx; returns (response, adapter).

    `build(adapter, target, model)` makes the UpstreamRequest. Failover moves on after a 429, a 5xx, a
    timeout or a connection failure (always before the first byte reaches the client); other 4xx
    answers are the client's to see. A streaming response comes back unread. A config with a key pool
    (key_pool.py) is tried key by key first: a 429 cools that key, a 401/403 rejects it, and the pool's next
    key is tried at once; `body` (the client's) names the conversation a key sticks to.
    """
    last_error: GatewayError | None = None
    for index, (target, model) in enumerate(chain):
        if not runtime.breaker.allow(target.id):
            record.attempt(target, model, None, "circuit_open")
            last_error = GatewayError(502, PROVIDER, f"Provider '{target.name}' is failing; its circuit is open "
                                      "and it is skipped for now.", code="circuit_open")
            continue
        if target.quota is not None:  # the provider account's quota (quotas.py); a config without one: no Redis
            held = await quotas.acquire(runtime, target, model, f"{record.request_id}~{index}", record.quota_tokens())
            if isinstance(held, GatewayError):  # waited QUOTA_QUEUE_MAX_WAIT: the next target, or this 429
                record.attempt(target, model, None, "provider_quota_exceeded")
                last_error = held
                continue
            try:
                sent, adapter = await _target(runtime, target, model, build, stream, record, body)
            except BaseException:
                if held is not None:
                    held.finish()
                raise
            if not isinstance(sent, Failed):
                record.quota = held  # the Call settles it: TPM to the reported usage, the slot freed
            elif held is not None:
                held.finish()  # this target failed: its tokens go back, its slot is freed
        else:
            sent, adapter = await _target(runtime, target, model, build, stream, record, body)
        if not isinstance(sent, Failed):
            return sent, adapter
        last_error = sent.error
        if not sent.failover:
            raise last_error
    assert last_error is not None  # routing answers 404 before an empty chain gets here
    raise last_error


async def _target(runtime, target: Target, model: str, build, stream: bool, record: UsageRecord, body: dict | None):
    """One target of the chain: its own key, or its pool's keys in turn; (the response or Failed, the adapter)."""
    adapter = adapter_for(target.wire)
    pools = runtime.registry.pools.by_id
    pool = pools.get(target.id) if pools else None
    if pool is None:
        return await _send(runtime, adapter, target, model, build, stream, record, False), adapter
    for key in pool.order(body, runtime.key_states):
        sent = await _send(runtime, adapter, key, model, build, stream, record, True)
        if not isinstance(sent, Failed) or sent.status not in KEY_STATUSES:
            break
        if sent.status == 429:
            runtime.key_states.cool(key, sent.retry_after)
        else:
            runtime.key_states.reject(key, sent.status)
    return sent, adapter


class Failed(NamedTuple):
    """One key's last try: the client's error, the upstream's status (None: no answer), whether to fail over."""

    error: GatewayError
    status: int | None
    retry_after: float | None
    failover: bool


async def _send(runtime, adapter, target: Target, model: str, build, stream: bool, record: UsageRecord,
                pooled: bool):
    """One key of one target, with its retries (none for a pool key's 429 or 401/403: the next key is tried
    instead): the response (2xx), or Failed."""
    try:
        upstream = build(adapter, target, model)
    except UpstreamError as err:  # the request cannot be expressed for this provider
        raise GatewayError(err.status, INVALID_REQUEST, err.message, err.param, err.code) from None
    tries = 1 if stream else 1 + max(0, settings.RETRY_MAX)
    for attempt in range(tries):
        retry_after = None
        status: int | None = None
        headers = upstream.headers
        if record.trace is not None:  # the attempt's span; its traceparent goes upstream (record.attempt ends it)
            headers = record.trace.attempt_start(target, model, headers)
        try:
            if stream:
                response = await runtime.http.send(runtime.http.build_request(
                    upstream.method, upstream.url, headers=headers, content=upstream.body), stream=True)
            else:
                response = await runtime.http.request(upstream.method, upstream.url, headers=headers,
                                                      content=upstream.body)
        except HTTPError as exc:
            error = transport_error(target, exc)
            runtime.breaker.failure(target.id)
            # A read timeout already waited UPSTREAM_TIMEOUT: not worth waiting that again; an
            # oversized answer would be as big the next time.
            retryable = not isinstance(exc, (ReadTimeout, WriteTimeout, PoolTimeout,
                                             DeadlineExceeded, ResponseTooLarge))
            failover = True
        else:
            status = response.status_code
            if 200 <= status < 300:
                runtime.breaker.success(target.id)
                record.attempt(target, model, status, None, pooled)
                record.target, record.model = target, model
                return response
            try:
                raw = await response.aread()
            except HTTPError:  # too large, or cut: the status alone has to do
                raw = b""
            await response.aclose()
            error = upstream_error(target, status, raw, response.headers)
            if status >= 500:
                runtime.breaker.failure(target.id)
            else:
                runtime.breaker.success(target.id)
            retryable = status in RETRY_STATUSES and not (pooled and status in KEY_STATUSES)
            failover = status == 429 or status >= 500
            retry_after = retry_after_seconds(response.headers.get("retry-after"))
        record.attempt(target, model, error.status, error.code, pooled)
        record.target, record.model = target, model
        if not retryable or attempt + 1 >= tries or (
                retry_after is not None and retry_after > settings.RETRY_MAX_WAIT):
            break
        await asyncio.sleep(backoff_delay(attempt, settings.RETRY_BASE_DELAY, settings.RETRY_MAX_WAIT, retry_after))
    return Failed(error, status, retry_after, failover)


def transport_error(target: Target, exc: HTTPError) -> GatewayError:
    if isinstance(exc, ResponseTooLarge):
        return GatewayError(502, PROVIDER, f"Provider '{target.name}' sent an answer larger than the gateway "
                            "accepts (UPSTREAM_MAX_BODY_BYTES).", code="upstream_response_too_large")
    if isinstance(exc, DeadlineExceeded):
        return GatewayError(504, PROVIDER, f"Provider '{target.name}' took longer than the gateway allows "
                            "(UPSTREAM_DEADLINE).", code="upstream_timeout")
    if isinstance(exc, PoolTimeout):
        return GatewayError(504, PROVIDER, f"No connection to provider '{target.name}' came free in time "
                            "(UPSTREAM_POOL_TIMEOUT).", code="upstream_timeout")
    if isinstance(exc, TimeoutException) and not isinstance(exc, ConnectTimeout):
        return GatewayError(504, PROVIDER, f"Provider '{target.name}' did not answer in time.",
                            code="upstream_timeout")
    return GatewayError(502, PROVIDER, f"Could not reach provider '{target.name}' ({type(exc).__name__}).",
                        code="upstream_unreachable")


def upstream_error(target: Target, status: int, raw: bytes, headers) -> GatewayError:
    """Map an upstream's non-2xx answer to the gateway's envelope (see the README's error table)."""
    message, param, code = error_message(raw, status, target)  # scrubbed: tenants must not see secrets
    if status == 429:
        retry_after = headers.get("retry-after")
        extra = [(b"retry-after", retry_after.encode())] if retry_after else []
        return GatewayError(429, RATE_LIMIT, message, param, code or "rate_limit_exceeded", headers=extra)
    if status in (401, 403):
        return GatewayError(502, PROVIDER, f"Provider '{target.name}' rejected the gateway's credentials "
                            f"(HTTP {status}); check that provider's API key.", code="provider_auth_failed")
    if 400 <= status < 500:
        return GatewayError(status, INVALID_REQUEST, message, param, code)
    return GatewayError(502, PROVIDER, f"Provider '{target.name}' failed with HTTP {status}: {message}",
                        code="upstream_error")


def refused(target: Target, err: UpstreamError) -> GatewayError:
    """A 200 that is really a refusal (e.g. Gemini's blocked prompt): answered as that upstream error would be."""
    return upstream_error(target, err.status, orjson.dumps({"error": {"message": err.message, "code": err.code}}), {})


def unreadable(target: Target, exc: Exception, what: str = "a response") -> GatewayError:
    return GatewayError(502, PROVIDER, f"Provider '{target.name}' sent {what} the gateway could not read: {exc}",
                        code="invalid_upstream_response")
