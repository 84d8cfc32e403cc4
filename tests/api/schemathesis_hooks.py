"""Checks of our own, loaded by the schemathesis CLI (config `hooks = "tests.api.schemathesis_hooks"`)
next to its built-in ones: every /v1 (and /health) error is the gateway's envelope, and no answer
anywhere carries a traceback or an HTML error page."""

import json

import schemathesis

ERROR_TYPES = {"provider_error", "rate_limit_error", "invalid_request_error", "authentication_error",
               "not_found_error"}


def _is_gateway_path(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/") or path.startswith("/health") or path == "/metrics"


ANTHROPIC_ERROR_TYPES = {"invalid_request_error", "authentication_error", "billing_error", "permission_error",
                         "not_found_error", "request_too_large", "rate_limit_error", "api_error", "overloaded_error"}


def _anthropic_envelope(body):
    """/v1/messages answers in Anthropic's envelope: {"type": "error", "error": {"type", "message"}, "request_id"}."""
    assert isinstance(body, dict) and set(body) == {"type", "error", "request_id"} and body["type"] == "error", \
        f"not Anthropic's error envelope: {body!r}"
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"type", "message"}, f"bad error: {error!r}"
    assert error["type"] in ANTHROPIC_ERROR_TYPES, f"unknown error type {error['type']!r}"
    assert isinstance(error["message"], str) and error["message"], "empty error message"


@schemathesis.check
def gateway_error_envelope(ctx, response, case):
    """A /v1, /health or /metrics error is {"error": {"type", "message", "param", "code"}} in JSON."""
    if not _is_gateway_path(case.operation.path) or response.status_code < 400:
        return None
    if case.operation.path == "/health/ready" and response.status_code == 503:
        return None  # readiness reports its checks, not an error
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type.startswith("application/json"), f"error answered as {content_type!r}"
    body = json.loads(response.content)
    if case.operation.path.startswith("/v1/messages"):
        _anthropic_envelope(body)
        return None
    assert isinstance(body, dict) and set(body) == {"error"}, f"not an error envelope: {body!r}"
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"type", "message", "param", "code"}, f"bad error: {error!r}"
    assert error["type"] in ERROR_TYPES, f"unknown error type {error['type']!r}"
    assert isinstance(error["message"], str) and error["message"], "empty error message"
    assert error["param"] is None or isinstance(error["param"], str)
    assert error["code"] is None or isinstance(error["code"], str)
    return None


@schemathesis.check
def no_traceback(ctx, response, case):
    """No answer leaks a traceback or a framework's HTML error page."""
    text = response.content.decode("utf-8", "replace")
    assert "Traceback (most recent call last)" not in text, "a traceback in the response"
    assert not text.lstrip().lower().startswith(("<!doctype html", "<html")), "an HTML page instead of JSON"
    return None
