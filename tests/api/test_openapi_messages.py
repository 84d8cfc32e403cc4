"""/openapi.json documents the Anthropic Messages ingress: both paths, Anthropic's error envelope for every
error status, the x-api-key scheme, and request examples the gateway really accepts."""

import pytest

from gomodel.api.openapi import openapi_document
from gomodel.gateway.ingress.messages_validation import validate_count_tokens, validate_messages

ENVELOPE = {"$ref": "#/components/schemas/anthropic.ErrorEnvelope"}
VALIDATORS = {"/v1/messages": validate_messages, "/v1/messages/count_tokens": validate_count_tokens}


@pytest.fixture(scope="module")
def doc():
    return openapi_document()


@pytest.mark.parametrize("path", list(VALIDATORS))
def test_messages_paths_are_documented(doc, path):
    operation = doc["paths"][path]["post"]
    assert operation["security"] == [{"ApiKeyAuth": []}, {"BearerAuth": []}]
    assert {p["name"] for p in operation["parameters"]} == {"anthropic-version", "anthropic-beta"}
    errors = {status for status in operation["responses"] if status >= "400"}
    assert errors == {"400", "401", "404", "405", "413", "429", "502", "504"}
    for status in errors:
        assert operation["responses"][status]["content"]["application/json"]["schema"] == ENVELOPE
    example = operation["requestBody"]["content"]["application/json"]["example"]
    VALIDATORS[path](example)  # the documented example is a request the gateway takes


def test_schemas_and_security(doc):
    schemas = doc["components"]["schemas"]
    assert schemas["anthropic.MessagesRequest"]["required"] == ["model", "max_tokens", "messages"]
    assert set(schemas["anthropic.Message"]["required"]) == {"id", "type", "role", "content", "model", "stop_reason",
                                                             "stop_sequence", "usage"}
    assert doc["components"]["securitySchemes"]["ApiKeyAuth"] == {
        "type": "apiKey", "in": "header", "name": "x-api-key",
        "description": doc["components"]["securitySchemes"]["ApiKeyAuth"]["description"]}
    assert "messages" in {tag["name"] for tag in doc["tags"]}
