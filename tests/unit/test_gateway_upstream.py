"""gomodel.gateway.upstream: how an upstream's answer or failure becomes the gateway's error envelope."""

import pytest

from gomodel.gateway import upstream_errors
from gomodel.gateway.upstream import transport_error, upstream_error
from providers.base import Target

TARGET = Target(id=7, name="openai", provider_type="openai", wire="openai_compat",
                base_url="https://api.openai.com/v1", api_key="sk-upstream-secret")


def test_429_keeps_retry_after_and_the_upstream_message():
    err = upstream_error(TARGET, 429, b'{"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}}',
                         {"retry-after": "7"})
    assert (err.status, err.type, err.code, err.message) == (429, "rate_limit_error", "rate_limit_exceeded",
                                                             "Rate limit reached")
    assert err.headers == [(b"retry-after", b"7")]


def test_429_without_code_or_retry_after():
    err = upstream_error(TARGET, 429, b"slow down", {})
    assert (err.status, err.code, err.headers) == (429, "rate_limit_exceeded", [])
    assert err.message == "slow down"


@pytest.mark.parametrize("status", [401, 403])
def test_provider_auth_failure_is_502_and_hides_the_upstream_text(status):
    raw = b'{"error": {"message": "Incorrect API key provided: sk-upstream-secret", "type": "invalid_request_error"}}'
    err = upstream_error(TARGET, status, raw, {})
    assert (err.status, err.type, err.code, err.param) == (502, "provider_error", "provider_auth_failed", None)
    assert "sk-upstream" not in err.message and "Incorrect API key" not in err.message
    assert "openai" in err.message and str(status) in err.message


@pytest.mark.parametrize("status", [400, 404, 413, 422])
def test_other_4xx_keep_status_message_param_and_code(status):
    raw = b'{"error": {"message": "temperature is out of range", "param": "temperature", "code": "invalid_value"}}'
    err = upstream_error(TARGET, status, raw, {})
    assert (err.status, err.type, err.message, err.param, err.code) == (
        status, "invalid_request_error", "temperature is out of range", "temperature", "invalid_value")


@pytest.mark.parametrize("status", [500, 502, 503, 529])
def test_5xx_is_502_provider_error(status):
    err = upstream_error(TARGET, status, b'{"error": {"message": "The server had an error"}}', {})
    assert (err.status, err.type, err.code) == (502, "provider_error", "upstream_error")
    assert f"HTTP {status}" in err.message and "The server had an error" in err.message


@pytest.mark.parametrize("exc, status, code", [
    (upstream_errors.ReadTimeout("timed out"), 504, "upstream_timeout"),
    (upstream_errors.WriteTimeout("timed out"), 504, "upstream_timeout"),
    (upstream_errors.PoolTimeout("timed out"), 504, "upstream_timeout"),
    (upstream_errors.ConnectError("refused"), 502, "upstream_unreachable"),
    (upstream_errors.NetworkError("reset"), 502, "upstream_unreachable"),
    (upstream_errors.RemoteProtocolError("bad"), 502, "upstream_unreachable"),
])
def test_transport_errors(exc, status, code):
    err = transport_error(TARGET, exc)
    assert (err.status, err.type, err.code) == (status, "provider_error", code)
    assert "openai" in err.message and "sk-upstream-secret" not in err.message


def test_bounded_upstream_failures():
    from gomodel.gateway.upstream_errors import DeadlineExceeded, ResponseTooLarge

    err = transport_error(TARGET, ResponseTooLarge("big"))
    assert (err.status, err.code) == (502, "upstream_response_too_large")
    err = transport_error(TARGET, DeadlineExceeded("long"))
    assert (err.status, err.code) == (504, "upstream_timeout") and "UPSTREAM_DEADLINE" in err.message
    err = transport_error(TARGET, upstream_errors.PoolTimeout("busy"))
    assert (err.status, err.code) == (504, "upstream_timeout") and "UPSTREAM_POOL_TIMEOUT" in err.message
