"""The Anthropic Messages ingress (`POST /v1/messages`, `POST /v1/messages/count_tokens`) in the OpenAPI
document, merged in by gomodel/api/openapi_v1.py: paths, answers and Anthropic's error envelope. The
request schemas (`anthropic.MessagesRequest`, …) are declared once in gomodel/gateway/request_schema.py,
which the gateway validates against."""

ENVELOPE = {"$ref": "#/components/schemas/anthropic.ErrorEnvelope"}
REQUEST_ID = {"X-Request-Id": {"description": "The gateway's id for this request (also in usage rows and logs).",
                               "schema": {"type": "string"}}}
ERRORS = {
    "400": "invalid_request_error: malformed JSON, a missing or ill-typed field (named in the message), input "
           "only Anthropic models take sent to another provider, or an upstream's 400.",
    "401": "authentication_error: missing, unknown, revoked or expired API key (`x-api-key` or `Authorization: "
           "Bearer`).",
    "404": "not_found_error: no configured provider serves the model.",
    "405": "invalid_request_error: another method on this path; the Allow header names the right one.",
    "413": "request_too_large: the body exceeds BODY_SIZE_LIMIT.",
    "429": "rate_limit_error: a rate limit (the gateway's or the upstream's); Retry-After says when to retry.",
    "502": "api_error (overloaded_error when the provider's circuit is open): the upstream failed, was unreachable, "
           "rejected the gateway's credentials, or sent an answer the gateway could not read.",
    "504": "api_error: the upstream did not answer within UPSTREAM_TIMEOUT.",
}
CODES = ("400", "401", "404", "405", "413", "429", "502", "504")


def _errors() -> dict:
    out = {}
    for code in CODES:
        headers = dict(REQUEST_ID)
        if code == "429":
            headers["Retry-After"] = {"description": "Seconds to wait before retrying.", "schema": {"type": "string"}}
        if code == "405":
            headers["Allow"] = {"description": "The methods this path takes.", "schema": {"type": "string"}}
        out[code] = {"description": ERRORS[code], "headers": headers, "content": {"application/json": {
            "schema": ENVELOPE}}}
    return out


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/anthropic.{name}"}


ANTHROPIC_HEADERS = [
    {"in": "header", "name": "anthropic-version", "required": False, "schema": {"type": "string"},
     "description": "Accepted; forwarded to an Anthropic upstream (default 2023-06-01)."},
    {"in": "header", "name": "anthropic-beta", "required": False, "schema": {"type": "string"},
     "description": "Comma-separated betas; forwarded to an Anthropic upstream, ignored elsewhere."},
]
SECURITY: list[dict[str, list[str]]] = [{"ApiKeyAuth": []}, {"BearerAuth": []}]
EXAMPLE = {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": [{"role": "user", "content": "Hello"}]}

PATHS = {
    "/v1/messages": {
        "post": {
            "tags": ["messages"],
            "summary": "Create a message (Anthropic Messages API)",
            "operationId": "createMessage",
            "description": "Anthropic's Messages API in front of every provider, routed like chat (`provider/model`, "
                           "virtual models, failover). An Anthropic target gets the body as sent (only `model` "
                           "changed; `anthropic-beta` forwarded) and its answer is relayed as is; any other target "
                           "is translated to and from chat completions. With `stream: true` the answer is "
                           "Anthropic's event stream: `message_start`, `ping`, `content_block_start`, "
                           "`content_block_delta` (`text_delta`, `input_json_delta`, `thinking_delta`, "
                           "`signature_delta`), `content_block_stop`, `message_delta`, `message_stop`; a failure "
                           "after the stream started arrives as one `error` event.",
            "parameters": ANTHROPIC_HEADERS,
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": _ref("MessagesRequest"), "example": EXAMPLE}}},
            "responses": {
                "200": {"description": "A Message, or its event stream when stream=true", "headers": REQUEST_ID,
                        "content": {"application/json": {"schema": _ref("Message")},
                                    "text/event-stream": {"schema": {"type": "string"}}}},
                **_errors(),
            },
            "security": SECURITY,
        }
    },
    "/v1/messages/count_tokens": {
        "post": {
            "tags": ["messages"],
            "summary": "Count a message's input tokens",
            "operationId": "countMessageTokens",
            "description": "An Anthropic target counts natively (its `/v1/messages/count_tokens`); any other is "
                           "estimated offline (tiktoken for OpenAI models, ~4 characters a token otherwise). "
                           "Records no usage.",
            "parameters": ANTHROPIC_HEADERS,
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": _ref("CountTokensRequest"),
                "example": {k: v for k, v in EXAMPLE.items() if k != "max_tokens"}}}},
            "responses": {
                "200": {"description": "OK", "headers": REQUEST_ID,
                        "content": {"application/json": {"schema": _ref("CountTokensResponse")}}},
                **_errors(),
            },
            "security": SECURITY,
        }
    },
}

_BLOCK = {"type": "object", "required": ["type"], "additionalProperties": {},
          "description": "A content block: text, thinking, redacted_thinking, tool_use, or another type Anthropic "
                         "documents (relayed as is from an Anthropic target).",
          "properties": {"type": {"type": "string"}}}

# The request bodies are declared with the others in gomodel/gateway/request_schema.py (`anthropic.*`):
# the gateway validates against them. Here: what it answers.
SCHEMAS = {
    "anthropic.CountTokensResponse": {
        "type": "object", "required": ["input_tokens"], "properties": {"input_tokens": {"type": "integer"}},
    },
    "anthropic.Usage": {
        "type": "object", "required": ["input_tokens", "output_tokens"], "additionalProperties": {},
        "properties": {"input_tokens": {"type": "integer"}, "output_tokens": {"type": "integer"},
                       "cache_creation_input_tokens": {"type": "integer", "nullable": True},
                       "cache_read_input_tokens": {"type": "integer", "nullable": True}},
    },
    "anthropic.Message": {
        "type": "object", "additionalProperties": {},
        "required": ["id", "type", "role", "content", "model", "stop_reason", "stop_sequence", "usage"],
        "properties": {
            "id": {"type": "string"},
            "type": {"type": "string", "enum": ["message"]},
            "role": {"type": "string", "enum": ["assistant"]},
            "content": {"type": "array", "items": _BLOCK},
            "model": {"type": "string"},
            "stop_reason": {"type": "string", "nullable": True,
                            "description": "end_turn, max_tokens, stop_sequence, tool_use, pause_turn, refusal"},
            "stop_sequence": {"type": "string", "nullable": True},
            "usage": _ref("Usage"),
        },
    },
    "anthropic.ErrorEnvelope": {
        "type": "object", "required": ["type", "error", "request_id"],
        "properties": {
            "type": {"type": "string", "enum": ["error"]},
            "request_id": {"type": "string", "description": "The gateway's request id (as X-Request-Id)."},
            "error": {"type": "object", "required": ["type", "message"], "properties": {
                "type": {"type": "string", "enum": ["invalid_request_error", "authentication_error", "billing_error",
                                                   "permission_error", "not_found_error", "request_too_large",
                                                   "rate_limit_error", "api_error", "overloaded_error"]},
                "message": {"type": "string"}}},
        },
    },
}

SECURITY_SCHEMES = {
    "ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "x-api-key",
                   "description": "A tenant API key (sk_gom_…), as the anthropic SDK and Claude Code send it."},
}
TAG = {"name": "messages", "description": "Anthropic Messages API (the anthropic SDK, Claude Code)."}
