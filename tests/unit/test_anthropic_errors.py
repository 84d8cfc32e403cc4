"""gomodel.gateway.ingress.anthropic_errors: the gateway's errors in Anthropic's envelope and type names."""

import orjson
import pytest

from gomodel.gateway.errors import GatewayError
from gomodel.gateway.ingress.anthropic_errors import error_body, error_type


@pytest.mark.parametrize("status,code,kind", [
    (400, "invalid_json", "invalid_request_error"),
    (401, "missing_api_key", "authentication_error"),
    (403, None, "permission_error"),
    (404, "model_not_found", "not_found_error"),
    (405, "method_not_allowed", "invalid_request_error"),
    (413, "request_too_large", "request_too_large"),
    (429, "rate_limit_exceeded", "rate_limit_error"),
    (502, "upstream_error", "api_error"),
    (502, "circuit_open", "overloaded_error"),
    (504, "upstream_timeout", "api_error"),
    (500, "internal_error", "api_error"),
    (409, None, "invalid_request_error"),
])
def test_error_type_by_status(status, code, kind):
    assert error_type(status, code) == kind


def test_error_body_is_anthropics_envelope_without_openai_fields():
    err = GatewayError(404, "not_found_error", "The model 'x' is not served.", param="model", code="model_not_found")
    assert orjson.loads(error_body(err, "req_1")) == {
        "type": "error", "error": {"type": "not_found_error", "message": "The model 'x' is not served."},
        "request_id": "req_1"}
