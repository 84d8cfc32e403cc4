"""The gateway's own endpoints (/v1, /health, /metrics) in the OpenAPI document, kept to follow the seed
(shared/seed/: GoModel's published `POST /v1/chat/completions`). They are plain ASGI handlers, not
DRF views, so drf-spectacular cannot see them: `add_gateway_paths` (a postprocessing hook) writes
them into the generated document, ahead of the management API.

The seed's schema names and fields are kept as they are. Where the seed says less than the gateway
really does, this document says what the gateway does (and tests/api/test_schemathesis.py holds the
gateway to it):
- `core.Message.content` / `core.ResponseMessage.content`: the seed writes `type: array` and puts the
  real rule in `x-oneof` (null, a string, or an array of parts). Here that rule is the schema itself
  (`nullable` + `oneOf`); `x-oneof` is kept.
- The request schemas are not written here: they are declared once in gomodel/gateway/request_schema.py,
  and the gateway validates every body against exactly those (gomodel/gateway/validation.py), so the
  document and the gateway cannot disagree. E.g. `core.ChatRequest` requires a `model` (one printable
  token of at most 256 characters) and a non-empty `messages`, each message a non-empty `role`.
- The gateway treats an optional field sent as null like an absent one (as OpenAI's API does), so
  those fields are `nullable`. `max_completion_tokens` and `reasoning_effort`, which it also checks,
  are listed.
- Values OpenAI-format upstreams send as null, which the gateway passes through (`logprobs`,
  `finish_reason`, `system_fingerprint`, `usage`), are `nullable`.
- Every status the gateway really answers is listed (the seed lists 200, 400, 401, 429, 502), each
  error with the `core.OpenAIErrorEnvelope`.
"""

import copy

from gomodel.gateway.request_schema import REQUEST_SCHEMAS, content_schema

from . import openapi_messages

ENVELOPE = {"$ref": "#/components/schemas/core.OpenAIErrorEnvelope"}
REQUEST_ID = {"X-Request-Id": {"description": "The gateway's id for this request (also in usage rows and logs).",
                               "schema": {"type": "string"}}}

ERROR_DESCRIPTIONS = {
    "400": "Bad Request: malformed JSON, JSON nested deeper than JSON_MAX_DEPTH or with more than JSON_MAX_ITEMS "
           "values, a missing or ill-typed field (named in `param`), or an upstream's 400.",
    "401": "Unauthorized: missing, unknown, revoked or expired API key.",
    "403": "Forbidden (`permission_error`, code `model_not_allowed`): the model is outside the key's or its "
           "tenant's allow-list. Answered before any upstream call; nothing is recorded.",
    "404": "Not Found: no configured provider serves the model, or the named provider is not configured.",
    "405": "Method Not Allowed: another method on this path; the Allow header names the right one.",
    "413": "Payload Too Large: the body exceeds BODY_SIZE_LIMIT.",
    "429": "Too Many Requests: a rate limit of the key or its tenant (code `rate_limit_exceeded`, the message "
           "names the limit), the key's or tenant's budget is spent (code `budget_exceeded`; Retry-After: seconds "
           "to the period's end, none for a total budget), or the upstream's limit; Retry-After says when to retry.",
    "502": "Bad Gateway: the upstream failed, was unreachable, rejected the gateway's credentials, or sent "
           "an answer the gateway could not read or larger than UPSTREAM_MAX_BODY_BYTES.",
    "503": "Service Unavailable: the rate limits could not be checked (Redis did not answer) and "
           "LIMITS_FAIL_MODE is `closed`.",
    "504": "Gateway Timeout: the upstream did not answer within UPSTREAM_TIMEOUT, took longer than "
           "UPSTREAM_DEADLINE in all, or no upstream connection came free within UPSTREAM_POOL_TIMEOUT.",
}

_DURATION = {"type": "string", "example": "6.5s"}
RATE_LIMIT_HEADERS = {  # OpenAI's names; present when the key or its tenant has such a limit
    "x-ratelimit-limit-requests": {"description": "Requests per minute allowed (the key's or its tenant's, "
                                                  "whichever has less left).", "schema": {"type": "integer"}},
    "x-ratelimit-remaining-requests": {"description": "Requests left in the sliding minute.",
                                       "schema": {"type": "integer"}},
    "x-ratelimit-reset-requests": {"description": "Until the request count is back to its limit.",
                                   "schema": _DURATION},
    "x-ratelimit-limit-tokens": {"description": "Tokens per minute allowed.", "schema": {"type": "integer"}},
    "x-ratelimit-remaining-tokens": {"description": "Tokens left in the sliding minute (reservations of "
                                                    "requests in flight count).", "schema": {"type": "integer"}},
    "x-ratelimit-reset-tokens": {"description": "Until the token count is back to its limit.", "schema": _DURATION},
}


def _error(code: str, sse: bool = False) -> dict:
    content = {"application/json": {"schema": ENVELOPE}}
    if sse:  # as in the seed: errors are documented for both media types of the chat endpoint
        content["text/event-stream"] = {"schema": ENVELOPE}
    response = {"description": ERROR_DESCRIPTIONS[code], "headers": REQUEST_ID, "content": content}
    if code == "429":
        response["headers"] = {**REQUEST_ID, "Retry-After": {"description": "Seconds to wait before retrying.",
                                                             "schema": {"type": "string"}},
                               "retry-after-ms": {"description": "The same in milliseconds (the gateway's own "
                                                                 "limits).", "schema": {"type": "string"}},
                               **RATE_LIMIT_HEADERS}
    if code == "405":
        response["headers"] = {**REQUEST_ID, "Allow": {"description": "The methods this path takes.",
                                                       "schema": {"type": "string"}}}
    return response


def _errors(*codes: str, sse: bool = False) -> dict:
    return {code: _error(code, sse) for code in codes}


CHAT_EXAMPLE = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}
EMBEDDINGS_EXAMPLE = {"model": "text-embedding-3-small", "input": "Hello"}
RESPONSES_EXAMPLE = {"model": "gpt-4o-mini", "input": "Hello", "instructions": "Be brief."}
RESPONSE_ID_PARAMETER = {"in": "path", "name": "response_id", "required": True,
                         "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                         "description": "The id the gateway gave the response (`resp_…`)."}

PATHS = {
    "/v1/chat/completions": {
        "post": {
            "tags": ["chat"],
            "summary": "Create a chat completion",
            "operationId": "createChatCompletion",
            "description": "Routes `model` (optionally `provider/model`, or with the `provider` hint) to a "
                           "configured provider. With `stream: true` the answer is server-sent events, each "
                           "`data:` a chunk in the ChatResponse shape, ending with `data: [DONE]`; an upstream "
                           "failure after the stream started arrives as one `data: {\"error\": …}` event.",
            "requestBody": {
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/core.ChatRequest"},
                                                 "example": CHAT_EXAMPLE}},
                "description": "Chat completion request",
                "required": True,
            },
            "responses": {
                "200": {
                    "description": "JSON response or SSE stream when stream=true",
                    "headers": {**REQUEST_ID, **RATE_LIMIT_HEADERS},
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/core.ChatResponse"}},
                        "text/event-stream": {"schema": {"$ref": "#/components/schemas/core.ChatResponse"}},
                    },
                },
                **_errors("400", "401", "403", "404", "405", "413", "429", "502", "503", "504", sse=True),
            },
            "security": [{"BearerAuth": []}],
        }
    },
    "/v1/embeddings": {
        "post": {
            "tags": ["embeddings"],
            "summary": "Create embeddings",
            "operationId": "createEmbeddings",
            "requestBody": {
                "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/core.EmbeddingRequest"},
                    "example": EMBEDDINGS_EXAMPLE}},
                "description": "Embeddings request",
                "required": True,
            },
            "responses": {
                "200": {"description": "OK", "headers": {**REQUEST_ID, **RATE_LIMIT_HEADERS}, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/core.EmbeddingResponse"}}}},
                **_errors("400", "401", "403", "404", "405", "413", "429", "502", "503", "504"),
            },
            "security": [{"BearerAuth": []}],
        }
    },
    "/v1/responses": {
        "post": {
            "tags": ["responses"],
            "summary": "Create a model response (OpenAI Responses API)",
            "operationId": "createResponse",
            "description": "Routes `model` like chat completions. A provider with its own Responses API (OpenAI, "
                           "xAI) gets the request as sent (model and key changed); any other provider gets it "
                           "translated to chat completions and its answer translated back. With `stream: true` "
                           "the answer is the typed server-sent events (`response.created`, "
                           "`response.output_text.delta`, …, `response.completed`), each with a "
                           "`sequence_number`; an upstream failure after the stream started ends it with "
                           "`response.failed`. With `store` (default true) the response is kept for "
                           "RESPONSES_RETENTION_DAYS so that `previous_response_id` continues the conversation "
                           "on any provider.",
            "requestBody": {
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/core.ResponsesRequest"},
                                                 "example": RESPONSES_EXAMPLE}},
                "description": "Responses request",
                "required": True,
            },
            "responses": {
                "200": {
                    "description": "The response object, or its SSE stream when stream=true",
                    "headers": REQUEST_ID,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/core.ResponseObject"}},
                        "text/event-stream": {"schema": {"$ref": "#/components/schemas/core.ResponseStreamEvent"}},
                    },
                },
                **_errors("400", "401", "404", "405", "413", "429", "502", "504"),
            },
            "security": [{"BearerAuth": []}],
        }
    },
    "/v1/responses/{response_id}": {
        "get": {
            "tags": ["responses"],
            "summary": "Retrieve a stored response (the calling tenant's only)",
            "operationId": "getResponse",
            "parameters": [RESPONSE_ID_PARAMETER],
            "responses": {
                "200": {"description": "OK", "headers": REQUEST_ID, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/core.ResponseObject"}}}},
                **_errors("401", "404", "405"),
            },
            "security": [{"BearerAuth": []}],
        },
        "delete": {
            "tags": ["responses"],
            "summary": "Delete a stored response",
            "operationId": "deleteResponse",
            "parameters": [RESPONSE_ID_PARAMETER],
            "responses": {
                "200": {"description": "Deleted", "headers": REQUEST_ID, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/core.ResponseDeleted"}}}},
                **_errors("401", "404", "405"),
            },
            "security": [{"BearerAuth": []}],
        },
    },
    "/v1/responses/{response_id}/input_items": {
        "get": {
            "tags": ["responses"],
            "summary": "List the input items of a stored response (earlier turns included)",
            "operationId": "listResponseInputItems",
            "parameters": [
                RESPONSE_ID_PARAMETER,
                {"in": "query", "name": "limit", "schema": {"type": "integer", "minimum": 1, "maximum": 100,
                                                            "default": 20}},
                {"in": "query", "name": "order", "schema": {"type": "string", "enum": ["asc", "desc"],
                                                            "default": "desc"}},
                {"in": "query", "name": "after", "schema": {"type": "string"},
                 "description": "An item id: the page starts after it."},
            ],
            "responses": {
                "200": {"description": "OK", "headers": REQUEST_ID, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/core.ResponseItemList"}}}},
                **_errors("400", "401", "404", "405"),
            },
            "security": [{"BearerAuth": []}],
        }
    },
    "/v1/models": {
        "get": {
            "tags": ["models"],
            "summary": "List the models every configured provider serves",
            "description": "Ids are `provider/model`, the form that routes to exactly that provider.",
            "operationId": "listModels",
            "responses": {
                "200": {"description": "OK", "headers": REQUEST_ID, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/core.ModelsResponse"}}}},
                **_errors("401", "405"),
            },
            "security": [{"BearerAuth": []}],
        }
    },
    "/v1/usage": {
        "get": {
            "tags": ["usage"],
            "summary": "The calling tenant's usage: tokens and cost per day, provider, model and key",
            "description": "From the daily roll-ups plus the events not drained yet. Without `start`/`end`: "
                           "this calendar month (UTC); with one of them: that day's month; at most 366 days. "
                           "The master key names the tenant with `?tenant=<slug>`.",
            "operationId": "getUsage",
            "parameters": [
                {"in": "query", "name": "start", "schema": {"type": "string", "format": "date"},
                 "description": "First day, YYYY-MM-DD (inclusive)."},
                {"in": "query", "name": "end", "schema": {"type": "string", "format": "date"},
                 "description": "Last day, YYYY-MM-DD (inclusive)."},
                {"in": "query", "name": "tenant", "schema": {"type": "string"},
                 "description": "A tenant's slug; only with the master key, which it is required with."},
                {"in": "query", "name": "group_by", "schema": {"type": "string", "enum": ["label", "user"]},
                 "description": "One row per request label (`label`: name:value) or per end user (`user`) instead "
                                "of per day × provider × model × key; summed from the stored events plus the "
                                "undrained ones."},
                {"in": "query", "name": "label", "schema": {"type": "string"},
                 "description": "Only the requests carrying this label, as name:value."},
                {"in": "query", "name": "user", "schema": {"type": "string"},
                 "description": "Only this end user's requests."},
            ],
            "responses": {
                "200": {"description": "OK", "headers": REQUEST_ID, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/core.UsageReport"}}}},
                **_errors("400", "401", "404", "405"),
            },
            "security": [{"BearerAuth": []}],
        }
    },
    "/metrics": {
        "get": {
            "tags": ["health"],
            "summary": "Prometheus metrics",
            "description": "Prometheus text format. Needs `Authorization: Bearer <METRICS_TOKEN>` (or the "
                           "master key), unless the server runs with METRICS_PUBLIC=1.",
            "operationId": "metrics",
            "responses": {
                "200": {"description": "OK", "content": {
                    "text/plain": {"schema": {"type": "string"}}}},
                **_errors("401", "405"),
            },
            "security": [],
        }
    },
    "/health": {
        "get": {
            "tags": ["health"],
            "summary": "Liveness: the process answers",
            "operationId": "health",
            "responses": {
                "200": {"description": "OK", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/core.HealthResponse"}}}},
                **_errors("405"),
            },
            "security": [],
        }
    },
    "/health/ready": {
        "get": {
            "tags": ["health"],
            "summary": "Readiness: the database and Redis answer, every provider key decrypts",
            "operationId": "ready",
            "responses": {
                "200": {"description": "Ready", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/core.ReadyResponse"}}}},
                "503": {"description": "A dependency does not answer (see `checks`)", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/core.ReadyResponse"}}}},
                **_errors("405"),
            },
            "security": [],
        }
    },
}

SCHEMAS = {
    **REQUEST_SCHEMAS,  # the request bodies: declared once, also what the gateway validates against
    # -- the seed's schemas ------------------------------------------------------------------------
    "core.ChatResponse": {
        "type": "object",
        "properties": {
            "choices": {"type": "array", "items": {"$ref": "#/components/schemas/core.Choice"}},
            "created": {"type": "integer"},
            "id": {"type": "string"},
            "model": {"type": "string"},
            "object": {"type": "string"},
            "provider": {"type": "string"},
            "system_fingerprint": {"type": "string", "nullable": True},
            "usage": {"allOf": [{"$ref": "#/components/schemas/core.Usage"}], "nullable": True},
        },
    },
    "core.OpenAIErrorEnvelope": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"$ref": "#/components/schemas/core.OpenAIErrorObject"}},
    },
    "core.Choice": {
        "type": "object",
        "properties": {
            "finish_reason": {"type": "string", "nullable": True},
            "index": {"type": "integer"},
            "logprobs": {"type": "object", "nullable": True},
            "message": {"$ref": "#/components/schemas/core.ResponseMessage"},
        },
    },
    "core.Usage": {
        "type": "object",
        "properties": {
            "completion_tokens": {"type": "integer"},
            "completion_tokens_details": {"$ref": "#/components/schemas/core.CompletionTokensDetails"},
            "prompt_tokens": {"type": "integer"},
            "prompt_tokens_details": {"$ref": "#/components/schemas/core.PromptTokensDetails"},
            "raw_usage": {"type": "object", "additionalProperties": {}},
            "total_tokens": {"type": "integer"},
        },
    },
    "core.OpenAIErrorObject": {
        "type": "object",
        "required": ["code", "message", "param", "type"],
        "properties": {
            "code": {"type": "string", "nullable": True},
            "message": {"type": "string"},
            "param": {"type": "string", "nullable": True},
            "type": {"$ref": "#/components/schemas/core.ErrorType"},
        },
    },
    "core.ResponseMessage": {
        "type": "object",
        "properties": {
            "content": content_schema(),
            "role": {"type": "string"},
            "tool_calls": {"type": "array", "items": {"$ref": "#/components/schemas/core.ToolCall"}},
        },
    },
    "core.CompletionTokensDetails": {
        "type": "object",
        "properties": {
            "accepted_prediction_tokens": {"type": "integer"},
            "audio_tokens": {"type": "integer"},
            "reasoning_tokens": {"type": "integer"},
            "rejected_prediction_tokens": {"type": "integer"},
        },
    },
    "core.PromptTokensDetails": {
        "type": "object",
        "properties": {
            "audio_tokens": {"type": "integer"},
            "cached_tokens": {"type": "integer"},
            "image_tokens": {"type": "integer"},
            "text_tokens": {"type": "integer"},
        },
    },
    "core.ErrorType": {
        "type": "string",
        "description": "The seed's values. The gateway also answers `permission_error` (403, a model outside the "
                       "key's or tenant's allow-list), which the seed's enum does not list.",
        "enum": ["provider_error", "rate_limit_error", "invalid_request_error", "authentication_error",
                 "not_found_error"],
        "x-enum-varnames": ["ErrorTypeProvider", "ErrorTypeRateLimit", "ErrorTypeInvalidRequest",
                            "ErrorTypeAuthentication", "ErrorTypeNotFound"],
    },
    # -- beyond the seed: the gateway's other endpoints ------------------------------------------------
    "core.EmbeddingResponse": {
        "type": "object",
        "properties": {
            "object": {"type": "string"},
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/core.EmbeddingData"}},
            "model": {"type": "string"},
            "provider": {"type": "string"},
            "usage": {"allOf": [{"$ref": "#/components/schemas/core.EmbeddingUsage"}], "nullable": True},
        },
    },
    "core.EmbeddingData": {
        "type": "object",
        "properties": {
            "object": {"type": "string"},
            "index": {"type": "integer"},
            "embedding": {"description": "Floats, or a base64 string when encoding_format is base64.",
                          "oneOf": [{"type": "array", "items": {"type": "number"}}, {"type": "string"}]},
        },
    },
    "core.EmbeddingUsage": {
        "type": "object",
        "properties": {"prompt_tokens": {"type": "integer"}, "total_tokens": {"type": "integer"}},
    },
    "core.ModelsResponse": {
        "type": "object",
        "required": ["object", "data"],
        "properties": {
            "object": {"type": "string", "enum": ["list"]},
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/core.Model"}},
        },
    },
    "core.Model": {
        "type": "object",
        "required": ["id", "object", "created", "owned_by"],
        "properties": {
            "id": {"type": "string", "description": "provider/model"},
            "object": {"type": "string", "enum": ["model"]},
            "created": {"type": "integer"},
            "owned_by": {"type": "string", "description": "The provider config's name."},
        },
    },
    "core.HealthResponse": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string", "enum": ["ok"]}},
    },
    "core.ReadyResponse": {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "checks": {"type": "object", "additionalProperties": {"type": "boolean"}},
            "undecryptable_providers": {
                "type": "array", "items": {"type": "string"},
                "description": "Enabled providers whose stored API key this gateway cannot decrypt "
                               "(its GOMODEL_ENCRYPTION_KEYS differ from the ones that stored it)."},
        },
    },
    "core.UsageReport": {
        "type": "object",
        "required": ["object", "tenant", "start", "end", "totals", "data", "rate_limits"],
        "properties": {
            "object": {"type": "string", "enum": ["usage"]},
            "tenant": {"type": "string", "description": "The tenant's slug."},
            "start": {"type": "string", "format": "date"},
            "end": {"type": "string", "format": "date"},
            "totals": {"$ref": "#/components/schemas/core.UsageTotals"},
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/core.UsageRow"}},
            "group_by": {"type": "string", "enum": ["label", "user"], "description": "As asked (absent: none)."},
            "filters": {"type": "object", "additionalProperties": {"type": "string"},
                        "description": "The label and user filters applied (absent: none)."},
            "rate_limits": {"$ref": "#/components/schemas/core.RateLimits"},
            "budget": {"type": "object", "nullable": True,
                       "description": "The tenant's and the calling key's budget now (null when Redis is "
                                      "unreachable); each null when none is set.",
                       "required": ["tenant", "key"],
                       "properties": {
                           "tenant": {"allOf": [{"$ref": "#/components/schemas/core.BudgetStatus"}],
                                      "nullable": True},
                           "key": {"allOf": [{"$ref": "#/components/schemas/core.BudgetStatus"}], "nullable": True},
                       }},
        },
    },
    "core.BudgetStatus": {
        "type": "object",
        "required": ["limit_usd", "spent_usd", "remaining_usd", "period", "period_start", "period_end",
                     "soft_limit_percent", "exceeded"],
        "properties": {
            "limit_usd": {"type": "string", "description": "USD as a decimal string."},
            "spent_usd": {"type": "string", "description": "Spent this period (requests with a known price)."},
            "remaining_usd": {"type": "string"},
            "period": {"type": "string", "enum": ["daily", "weekly", "monthly", "total"]},
            "period_start": {"type": "string", "format": "date", "nullable": True,
                             "description": "First UTC day of the period; null for total."},
            "period_end": {"type": "string", "format": "date-time", "nullable": True,
                           "description": "When the period ends and the budget resets; null for total."},
            "soft_limit_percent": {"type": "integer"},
            "exceeded": {"type": "boolean", "description": "Requests are refused with 429 budget_exceeded."},
        },
    },
    "core.RateLimits": {
        "type": "object",
        "description": "The calling key's and its tenant's rate limits now (read without consuming). `key` is "
                       "null for the master key.",
        "required": ["key", "tenant"],
        "properties": {
            "key": {"allOf": [{"$ref": "#/components/schemas/core.RateLimitScope"}], "nullable": True},
            "tenant": {"$ref": "#/components/schemas/core.RateLimitScope"},
        },
    },
    "core.RateLimitScope": {
        "type": "object",
        "required": ["requests", "tokens", "concurrency"],
        "properties": {name: {"$ref": "#/components/schemas/core.RateLimitState"}
                       for name in ("requests", "tokens", "concurrency")},
    },
    "core.RateLimitState": {
        "type": "object",
        "description": "`limit` null: no such limit. `remaining` null: no limit, or Redis did not answer. "
                       "`reset_seconds`: until the count is back to its limit (null for concurrency).",
        "required": ["limit", "remaining", "reset_seconds"],
        "properties": {
            "limit": {"type": "integer", "nullable": True},
            "remaining": {"type": "integer", "nullable": True},
            "reset_seconds": {"type": "number", "nullable": True},
        },
    },
    "core.UsageTotals": {
        "type": "object",
        "required": ["requests", "prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens",
                     "reasoning_tokens", "cost_usd", "cache_hits", "cost_saved_usd"],
        "properties": {
            "requests": {"type": "integer"},
            "prompt_tokens": {"type": "integer"},
            "completion_tokens": {"type": "integer"},
            "total_tokens": {"type": "integer"},
            "cached_tokens": {"type": "integer"},
            "reasoning_tokens": {"type": "integer"},
            "cost_usd": {"type": "string", "nullable": True,
                         "description": "USD as a decimal string; \"0\" for a period without requests; null "
                                        "when it has requests and none of them had a known price."},
            "cache_hits": {"type": "integer", "description": "Requests answered from the response cache (cost 0)."},
            "cost_saved_usd": {"type": "string", "description": "What the cache hits would have cost from their "
                                                                "provider (USD, a decimal string)."},
        },
    },
    "core.UsageRow": {
        "allOf": [
            {"$ref": "#/components/schemas/core.UsageTotals"},
            {"type": "object", "description": "date, provider, model and api_key; with group_by, label or user "
                                              "instead.", "properties": {
                "date": {"type": "string", "format": "date"},
                "provider": {"type": "string"},
                "model": {"type": "string"},
                "api_key": {"type": "string", "nullable": True, "description": "The key's display prefix."},
                "label": {"type": "string", "nullable": True,
                          "description": "group_by=label: name:value; null for the requests without a label."},
                "user": {"type": "string", "nullable": True,
                         "description": "group_by=user: the end user; null for the requests without one."},
                "budget": {"allOf": [{"$ref": "#/components/schemas/core.BudgetStatus"}], "nullable": True,
                           "description": "group_by=label|user: the budget of this label value (the tenant's "
                                          "label_budgets) or end user (user_budget_usd) this period; absent when "
                                          "it has none, null when Redis is unreachable."},
            }},
        ],
    },
    "core.ResponsesRequest": {
        "type": "object",
        "required": ["model"],
        "description": "OpenAI's Responses request. `input` is required unless `previous_response_id` is given. "
                       "Function tools and message/function_call/function_call_output items work on every "
                       "provider; built-in tools and other item types only on a provider with the Responses API "
                       "(elsewhere: 400 `unsupported_value`).",
        "properties": {
            "model": {"type": "string", "minLength": 1, "pattern": "\\S"},
            "input": {"nullable": True, "oneOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/core.ResponseInputItem"}}]},
            "instructions": {"type": "string", "nullable": True},
            "tools": {"type": "array", "nullable": True, "items": {
                "type": "object", "required": ["type"], "additionalProperties": {},
                "properties": {"type": {"type": "string"}, "name": {"type": "string"},
                               "description": {"type": "string"}, "parameters": {"type": "object"},
                               "strict": {"type": "boolean"}}}},
            "tool_choice": {"nullable": True, "anyOf": [
                {"type": "string", "enum": ["none", "auto", "required"]},
                {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"},
                                                                        "name": {"type": "string"}}}]},
            "max_output_tokens": {"type": "integer", "minimum": 1, "nullable": True},
            "temperature": {"type": "number", "minimum": 0, "maximum": 2, "nullable": True},
            "top_p": {"type": "number", "minimum": 0, "maximum": 1, "nullable": True},
            "reasoning": {"type": "object", "nullable": True, "properties": {
                "effort": {"type": "string", "nullable": True,
                           "enum": ["none", "minimal", "low", "medium", "high", "xhigh", "max", None]},
                "summary": {"type": "string", "nullable": True}}},
            "text": {"type": "object", "nullable": True, "properties": {"format": {
                "type": "object", "nullable": True, "required": ["type"],
                "properties": {"type": {"type": "string", "enum": ["text", "json_schema", "json_object"]},
                               "name": {"type": "string"}, "schema": {"type": "object"},
                               "strict": {"type": "boolean"}}}}},
            "parallel_tool_calls": {"type": "boolean", "nullable": True},
            "metadata": {"type": "object", "nullable": True, "maxProperties": 16,
                         "additionalProperties": {"type": "string"}},
            "store": {"type": "boolean", "nullable": True, "description": "Default true: kept for "
                      "RESPONSES_RETENTION_DAYS, readable by the same tenant only."},
            "previous_response_id": {"type": "string", "nullable": True, "minLength": 1, "maxLength": 64},
            "stream": {"type": "boolean", "nullable": True},
            "background": {"type": "boolean", "nullable": True, "enum": [False, None],
                           "description": "Background responses are not supported (400)."},
            "provider": {"description": "Gateway routing hint; stripped before upstream execution.",
                         "type": "string", "minLength": 1, "nullable": True},
            "user": {"type": "string", "nullable": True},
        },
    },
    "core.ResponseInputItem": {
        "type": "object",
        "description": "A message (`role` and `content`: a string or input_text/input_image/output_text parts), "
                       "a `function_call` (call_id, name, arguments) or a `function_call_output` (call_id, "
                       "output).",
        "additionalProperties": {},
        "properties": {"type": {"type": "string"}, "role": {"type": "string"}, "call_id": {"type": "string"},
                       "name": {"type": "string"}, "arguments": {"type": "string"}},
    },
    "core.ResponseObject": {
        "type": "object",
        "required": ["id", "object", "created_at", "status", "model", "output"],
        "additionalProperties": {},
        "properties": {
            "id": {"type": "string"},
            "object": {"type": "string", "enum": ["response"]},
            "created_at": {"type": "integer"},
            "status": {"type": "string"},
            "model": {"type": "string"},
            "output": {"type": "array", "items": {"type": "object", "additionalProperties": {}},
                       "description": "message (output_text parts), function_call and reasoning items."},
            "previous_response_id": {"type": "string", "nullable": True},
            "provider": {"type": "string", "description": "The provider config that answered."},
            "usage": {"type": "object", "nullable": True, "additionalProperties": {}, "properties": {
                "input_tokens": {"type": "integer"}, "output_tokens": {"type": "integer"},
                "total_tokens": {"type": "integer"},
                "input_tokens_details": {"type": "object", "properties": {"cached_tokens": {"type": "integer"}}},
                "output_tokens_details": {"type": "object",
                                          "properties": {"reasoning_tokens": {"type": "integer"}}}}},
        },
    },
    "core.ResponseStreamEvent": {
        "type": "object",
        "description": "One server-sent event: `event:` the type, `data:` the JSON event (`type`, "
                       "`sequence_number`, and the fields of that type as OpenAI documents them).",
        "required": ["data"],
        "properties": {"event": {"type": "string"}, "data": {"type": "string"}},
    },
    "core.ResponseDeleted": {
        "type": "object",
        "required": ["id", "object", "deleted"],
        "properties": {"id": {"type": "string"}, "object": {"type": "string", "enum": ["response.deleted"]},
                       "deleted": {"type": "boolean"}},
    },
    "core.ResponseItemList": {
        "type": "object",
        "required": ["object", "data", "first_id", "last_id", "has_more"],
        "properties": {
            "object": {"type": "string", "enum": ["list"]},
            "data": {"type": "array", "items": {"type": "object", "additionalProperties": {}}},
            "first_id": {"type": "string", "nullable": True},
            "last_id": {"type": "string", "nullable": True},
            "has_more": {"type": "boolean"},
        },
    },
    # -- the management API's error bodies (DRF's usual shapes) --------------------------------------
    "ErrorDetail": {
        "type": "object",
        "required": ["detail"],
        "properties": {"detail": {"type": "string"}},
    },
    "ValidationError": {
        "description": "DRF's usual shape: {\"field\": [\"message\", …]}, {\"non_field_errors\": […]}, or "
                       "{\"detail\": \"…\"} for a body that is not JSON.",
        "type": "object",
        "additionalProperties": {},
    },
    "NotFound": {
        "description": "DRF's {\"detail\"} for an unknown id; the gateway's envelope for a path no route matches.",
        "anyOf": [{"$ref": "#/components/schemas/ErrorDetail"},
                  {"$ref": "#/components/schemas/core.OpenAIErrorEnvelope"}],
    },
}

SECURITY_SCHEMES = {
    "BearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                   "description": "A tenant API key (sk_gom_…) or GOMODEL_MASTER_KEY. The gateway also takes "
                                  "the key in an `x-api-key` header."},
}

TAGS = [
    {"name": "chat", "description": "OpenAI-compatible chat completions (the gateway's hot path)."},
    {"name": "embeddings", "description": "OpenAI-compatible embeddings."},
    {"name": "responses", "description": "OpenAI's Responses API in front of every provider, with stored responses."},
    {"name": "models", "description": "What the configured providers serve."},
    {"name": "usage", "description": "A tenant's tokens and cost."},
    {"name": "health", "description": "Liveness, readiness and metrics."},
    {"name": "tenants", "description": "Management API: tenants."},
    {"name": "keys", "description": "Management API: tenants' API keys (the secret is shown once, at creation)."},
    {"name": "providers", "description": "Management API: upstream provider configs (keys are write-only)."},
    {"name": "prices", "description": "Management API: model prices (USD per million tokens)."},
    {"name": "audit", "description": "Management API: the audit trail of every write."},
]

SEED_DESCRIPTION = ("AI gateway routing requests to multiple LLM providers (OpenAI, Anthropic, Gemini, Groq, "
                    "OpenRouter, DeepSeek, Z.ai, xAI, MiniMax, Xiaomi MiMo, OpenCode Go, Oracle, Ollama, "
                    "Bailian). Drop-in OpenAI-compatible API.")
MANAGEMENT_DESCRIPTION = (
    "\n\nThe management API (`/api/v1/`) takes `Authorization: Bearer <GOMODEL_MASTER_KEY>` or a staff user's "
    "token (`Bearer <token>` or `Token <token>`, issued in admin). Without credentials, or with unknown ones, it "
    "answers 401; a tenant API key is refused with 403. Validation errors use Django REST framework's usual "
    "shape; lists are paginated with `limit`/`offset`.")

SERVERS = [{"url": "{base_url}", "description": "Edit the base URL to point at your GoModel deployment.",
            "variables": {"base_url": {"default": "http://localhost:8080",
                                       "description": "Your GoModel deployment URL"}}}]


PATHS.update(openapi_messages.PATHS)
SCHEMAS.update(openapi_messages.SCHEMAS)
SECURITY_SCHEMES.update(openapi_messages.SECURITY_SCHEMES)
TAGS.insert(2, openapi_messages.TAG)


def add_gateway_paths(result, generator=None, request=None, public=True):
    """drf-spectacular postprocessing hook: the /v1 and /health paths first, then the management API."""
    result["info"]["description"] = SEED_DESCRIPTION + MANAGEMENT_DESCRIPTION
    result["info"].setdefault("contact", {})
    result["servers"] = copy.deepcopy(SERVERS)
    result["paths"] = {**copy.deepcopy(PATHS), **result.get("paths", {})}
    components = result.setdefault("components", {})
    components["schemas"] = {**copy.deepcopy(SCHEMAS), **components.get("schemas", {})}
    components["securitySchemes"] = {**copy.deepcopy(SECURITY_SCHEMES), **components.get("securitySchemes", {})}
    result["tags"] = copy.deepcopy(TAGS) + [t for t in result.get("tags", []) if t["name"] not in
                                            {tag["name"] for tag in TAGS}]
    return result
