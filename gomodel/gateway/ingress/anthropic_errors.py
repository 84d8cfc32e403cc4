"""Errors on the Anthropic ingress in Anthropic's own envelope, `{"type": "error", "error": {"type",
"message"}, "request_id"}`, with its error type names (https://docs.claude.com/en/api/errors); the statuses are the
gateway's (README, error table), so an upstream failure is still a 502 or 504."""

import orjson

from ..errors import GatewayError

TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
}
OVERLOADED_CODES = frozenset(("overloaded_error", "circuit_open"))


def error_type(status: int, code: str | None) -> str:
    if code in OVERLOADED_CODES:
        return "overloaded_error"
    if status in TYPES:
        return TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def error_body(err: GatewayError, request_id: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": error_type(err.status, err.code), "message": err.message},
                         "request_id": request_id})
