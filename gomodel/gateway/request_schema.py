"""The /v1 request bodies, declared once: the OpenAPI document (gomodel/api/openapi_v1.py) publishes
these schemas as they are, and the gateway validates every body against them (validation.py, with
jsonschema_rs: compiled once, ~1 µs for a typical chat body, faster than the hand checks it replaced).
So what the document says and what the gateway refuses cannot drift apart.

They are OpenAPI 3.0 schemas (the seed's names and fields; `nullable`, `$ref` to components);
`json_schema()` turns one into the JSON Schema a validator takes. The gateway treats an optional field
sent as null like an absent one (as OpenAI's API does), hence the `nullable` fields. Fields the
gateway does not know pass through untouched (no `additionalProperties: false`).
"""

import copy
from typing import Any

REF = "#/components/schemas/"
CONTENT_DOC = ("ContentSchema documents that `content` accepts either a plain string\n"
               "or an array of ContentPart values.")
CONTENT_ONEOF = '[{"type":"null"},{"type":"string"},{"type":"array","items":{"$ref":"#/definitions/core.ContentPart"}}]'
# A model or provider name: it reaches logs, errors and the usage stream. One printable token (no
# whitespace, no control or invisible formatting characters), at most 256 characters.
NAME_PATTERN = "^[^\\s\\x00-\\x1f\\x7f-\\x9f\\u200b-\\u200f\\u2028-\\u202f\\u2060-\\u206f\\ufeff]+$"
NAME_MAX = 256


def name_schema(**extra) -> dict:
    return {"type": "string", "minLength": 1, "maxLength": NAME_MAX, "pattern": NAME_PATTERN,
            "x-invalid": f"at most {NAME_MAX} printable characters without spaces", **extra}


def content_schema() -> dict:
    return {
        "description": CONTENT_DOC,
        "nullable": True,
        "oneOf": [{"type": "string"}, {"type": "array", "items": {"$ref": REF + "core.ContentPart"}}],
        "x-oneof": CONTENT_ONEOF,
    }


def _needs(kind: str, *fields: str, properties: dict | None = None, hint: str | None = None) -> dict:
    """Anthropic's typed objects: one of type `kind` carries `fields`, shaped as `properties` say where the
    same field means another thing in another type (OpenAPI 3.0 has no if/then)."""
    then: dict[str, object] = {"required": list(fields)}
    if properties:
        then["properties"] = properties
    return {"anyOf": [{"properties": {"type": {"not": {"enum": [kind]}}}}, then],
            "x-invalid": hint or f"an object whose type '{kind}' needs {', '.join(repr(f) for f in fields)}"}


SOURCE = {"source": {"$ref": REF + "anthropic.Source"}}
SOURCE_HINT = ("an object whose type '%s' needs a 'source' object: {type: base64, media_type, data}, "
               "{type: url, url}, {type: text, data}, {type: file, file_id} or {type: content, content}")
PROVIDER_HINT = name_schema(description="Gateway routing hint; stripped before upstream execution.", nullable=True)

REQUEST_SCHEMAS: dict[str, dict[str, Any]] = {
    "core.ChatRequest": {
        "type": "object",
        "required": ["model", "messages"],
        "properties": {
            "max_tokens": {"type": "integer", "minimum": 1, "nullable": True},
            "max_completion_tokens": {"type": "integer", "minimum": 1, "nullable": True},
            "messages": {"type": "array", "minItems": 1, "items": {"$ref": REF + "core.Message"}},
            "model": name_schema(),
            "parallel_tool_calls": {"type": "boolean", "nullable": True},
            "provider": PROVIDER_HINT,
            "reasoning": {"allOf": [{"$ref": REF + "core.Reasoning"}], "nullable": True},
            "reasoning_effort": {"type": "string", "nullable": True,
                                 "description": "OpenAI's flat field; passed through as given."},
            "service_tier": {"type": "string", "nullable": True},
            "stream": {"type": "boolean", "nullable": True},
            "stream_options": {"allOf": [{"$ref": REF + "core.StreamOptions"}], "nullable": True},
            "temperature": {"type": "number", "nullable": True},
            "tool_choice": {"description": "string or object", "nullable": True,
                            "anyOf": [{"type": "string"}, {"type": "object"}]},
            "tools": {"type": "array", "nullable": True, "items": {"type": "object", "additionalProperties": {}}},
            "top_p": {"type": "number", "nullable": True},
            "user": {"type": "string", "nullable": True},
        },
    },
    "core.Message": {
        "type": "object",
        "required": ["role"],
        "properties": {
            "content": content_schema(),
            "name": {"type": "string", "nullable": True},
            "role": {"type": "string", "minLength": 1},
            "tool_call_id": {"type": "string", "nullable": True},
            "tool_calls": {"type": "array", "nullable": True, "items": {"$ref": REF + "core.ToolCall"}},
        },
    },
    "core.Reasoning": {
        "type": "object",
        "properties": {
            "effort": {
                "description": "Effort controls how much reasoning effort the model should use.\n"
                               "Valid values are \"low\", \"medium\", \"high\", \"xhigh\", and \"max\".\n"
                               "\"xhigh\" and \"max\" are supported by newer models such as Claude Opus 4.8;\n"
                               "providers downgrade unsupported levels to their nearest equivalent.",
                "type": "string",
                "enum": ["low", "medium", "high", "xhigh", "max", None],
                "nullable": True,
            }
        },
    },
    "core.StreamOptions": {
        "type": "object",
        "properties": {
            "include_usage": {
                "description": "IncludeUsage requests token usage information in streaming responses.\n"
                               "When true, the final streaming chunk will include usage statistics.",
                "type": "boolean",
            }
        },
    },
    "core.ContentPart": {
        "type": "object",
        "required": ["type"],
        "properties": {
            "image_url": {"$ref": REF + "core.ImageURLContent"},
            "input_audio": {"$ref": REF + "core.InputAudioContent"},
            "text": {"type": "string"},
            "type": {"type": "string"},
        },
        # A part of type "text" carries its text.
        "anyOf": [{"properties": {"type": {"not": {"enum": ["text"]}}}}, {"required": ["text"]}],
        "x-invalid": "an object with a string 'type' (and, for type 'text', a string 'text')",
    },
    "core.ToolCall": {
        "type": "object",
        "properties": {
            "function": {"$ref": REF + "core.FunctionCall"},
            "id": {"type": "string"},
            "type": {"type": "string"},
        },
    },
    "core.ImageURLContent": {
        "type": "object",
        "properties": {"detail": {"type": "string"}, "media_type": {"type": "string"}, "url": {"type": "string"}},
    },
    "core.InputAudioContent": {
        "type": "object",
        "properties": {"data": {"type": "string"}, "format": {"type": "string"}},
    },
    "core.FunctionCall": {
        "type": "object",
        "properties": {"arguments": {"type": "string"}, "name": {"type": "string"}},
    },
    # -- beyond the seed ----------------------------------------------------------------------------
    "core.EmbeddingRequest": {
        "type": "object",
        "required": ["model", "input"],
        "properties": {
            "model": name_schema(),
            "input": {
                "description": "A non-empty string, an array of them, an array of token ids, or an array of "
                               "token-id arrays.",
                "oneOf": [
                    {"type": "string", "minLength": 1},
                    {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
                    {"type": "array", "minItems": 1, "items": {"type": "integer"}},
                    {"type": "array", "minItems": 1,
                     "items": {"type": "array", "minItems": 1, "items": {"type": "integer"}}},
                ],
                "x-invalid": "a non-empty string, an array of strings, or token arrays",
            },
            "provider": PROVIDER_HINT,
            "dimensions": {"type": "integer", "minimum": 1, "nullable": True},
            "encoding_format": {"type": "string", "enum": ["float", "base64", None], "nullable": True},
            "user": {"type": "string", "nullable": True},
        },
    },
    # -- Anthropic Messages (/v1/messages), after Anthropic's Messages API reference ------------------
    "anthropic.MessagesRequest": {
        "type": "object",
        "required": ["model", "max_tokens", "messages"],
        "properties": {
            "model": name_schema(description="A model, `provider/model`, or a virtual model."),
            # 0 is allowed: it pre-warms the prompt cache without generating (Anthropic's documented use).
            "max_tokens": {"type": "integer", "minimum": 0},
            "messages": {"type": "array", "minItems": 1, "items": {"$ref": REF + "anthropic.InputMessage"}},
            "system": {"nullable": True, "oneOf": [
                {"type": "string"}, {"type": "array", "items": {"$ref": REF + "anthropic.TextBlock"}}],
                "x-invalid": "a string or an array of text blocks"},
            "tools": {"type": "array", "nullable": True, "items": {"$ref": REF + "anthropic.Tool"}},
            "tool_choice": {"allOf": [{"$ref": REF + "anthropic.ToolChoice"}], "nullable": True},
            "thinking": {"allOf": [{"$ref": REF + "anthropic.Thinking"}], "nullable": True},
            "stop_sequences": {"type": "array", "nullable": True, "items": {"type": "string"}},
            "temperature": {"type": "number", "nullable": True},
            "top_p": {"type": "number", "nullable": True},
            "top_k": {"type": "integer", "minimum": 0, "nullable": True},
            "metadata": {"type": "object", "nullable": True,
                         "properties": {"user_id": {"type": "string", "nullable": True}}},
            "stream": {"type": "boolean", "nullable": True},
            "provider": PROVIDER_HINT,
        },
    },
    "anthropic.CountTokensRequest": {
        "description": "A Messages request without `max_tokens` and `stream`.",
        "type": "object",
        "required": ["model", "messages"],
        "properties": {
            "model": name_schema(description="A model, `provider/model`, or a virtual model."),
            "messages": {"type": "array", "minItems": 1, "items": {"$ref": REF + "anthropic.InputMessage"}},
            "system": {"nullable": True, "oneOf": [
                {"type": "string"}, {"type": "array", "items": {"$ref": REF + "anthropic.TextBlock"}}],
                "x-invalid": "a string or an array of text blocks"},
            "tools": {"type": "array", "nullable": True, "items": {"$ref": REF + "anthropic.Tool"}},
            "tool_choice": {"allOf": [{"$ref": REF + "anthropic.ToolChoice"}], "nullable": True},
            "thinking": {"allOf": [{"$ref": REF + "anthropic.Thinking"}], "nullable": True},
            "provider": PROVIDER_HINT,
        },
    },
    "anthropic.InputMessage": {
        "description": "A turn. `system` is a mid-conversation system message (a string or text blocks; placement "
                       "rules as Anthropic's: after a user turn, before an assistant turn or at the end).",
        "type": "object",
        "required": ["role", "content"],
        "properties": {
            "role": {"type": "string", "enum": ["user", "assistant", "system"]},
            "content": {"oneOf": [{"type": "string"},
                                  {"type": "array", "items": {"$ref": REF + "anthropic.ContentBlock"}}],
                        "x-invalid": "a string or an array of content blocks"},
            "clear_at": {"type": "string", "nullable": True,
                         "description": "A system message's lifetime (beta `mid-conversation-system-clear-at-…`): "
                                        "`never` or `next_user_message`."},
        },
    },
    "anthropic.TextBlock": {
        "type": "object",
        "required": ["type", "text"],
        "properties": {"type": {"type": "string", "enum": ["text"]}, "text": {"type": "string"},
                       "cache_control": {"type": "object", "nullable": True}},
    },
    "anthropic.ContentBlock": {
        "description": "text, image, document, tool_use, tool_result, thinking, redacted_thinking, or another type "
                       "Anthropic documents (checked by an Anthropic target). Each known type needs its fields.",
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {"type": "string"},
            "cache_control": {"type": "object", "nullable": True},
            "text": {"type": "string"},
            "id": {"type": "string"},
            "name": {"type": "string"},
            "input": {"type": "object"},
            "tool_use_id": {"type": "string"},
            "content": {"nullable": True, "oneOf": [
                {"type": "string"}, {"type": "array", "items": {"$ref": REF + "anthropic.ContentBlock"}}],
                "x-invalid": "a string or an array of content blocks"},
            "is_error": {"type": "boolean", "nullable": True},
            "thinking": {"type": "string"},
            "signature": {"type": "string"},
            "data": {"type": "string"},
        },
        # `source` is an object on images and documents (a string on a search_result).
        "allOf": [_needs("text", "text"), _needs("image", "source", properties=SOURCE, hint=SOURCE_HINT % "image"),
                  _needs("document", "source", properties=SOURCE, hint=SOURCE_HINT % "document"),
                  _needs("tool_use", "id", "name", "input"), _needs("tool_result", "tool_use_id"),
                  _needs("thinking", "thinking", "signature"), _needs("redacted_thinking", "data")],
    },
    "anthropic.Source": {
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {"type": "string", "enum": ["base64", "url", "text", "content", "file"]},
            "media_type": {"type": "string"}, "data": {"type": "string"}, "url": {"type": "string"},
        },
        "allOf": [_needs("base64", "media_type", "data"), _needs("url", "url"), _needs("text", "data")],
    },
    "anthropic.Tool": {
        "description": "A client tool (`name`, `description`, `input_schema`) or an Anthropic server tool (a dated "
                       "`type`, e.g. web_search_20250305).",
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "type": {"type": "string", "nullable": True},
            "description": {"type": "string", "nullable": True},
            "input_schema": {"type": "object"},
            "cache_control": {"type": "object", "nullable": True},
        },
        # A client tool (no type, or "custom") carries its input_schema.
        "anyOf": [{"required": ["type"], "properties": {"type": {"type": "string", "not": {"enum": ["custom"]}}}},
                  {"required": ["input_schema"]}],
        "x-invalid": "a tool with a 'name' (and, for a client tool, an 'input_schema' object)",
    },
    "anthropic.ToolChoice": {
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {"type": "string", "enum": ["auto", "any", "tool", "none"]},
            "name": {"type": "string"},
            "disable_parallel_tool_use": {"type": "boolean", "nullable": True},
        },
        "allOf": [_needs("tool", "name")],
    },
    "anthropic.Thinking": {
        "description": "`{type: enabled, budget_tokens}`, `{type: adaptive}`, `{type: disabled}`, or a newer type.",
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"type": "string"}, "budget_tokens": {"type": "integer", "minimum": 1024}},
        "allOf": [_needs("enabled", "budget_tokens")],
    },
}


# -- OpenAPI 3.0 -> JSON Schema ----------------------------------------------------------------------

def json_schema(name: str) -> dict:
    """The JSON Schema (2020-12) of REQUEST_SCHEMAS[name], with every schema it refers to in $defs."""
    defs = {key: _convert(schema) for key, schema in REQUEST_SCHEMAS.items()}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$defs": defs, **defs[name]}


def _convert(node):
    if isinstance(node, list):
        return [_convert(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        node["$ref"] = "#/$defs/" + node["$ref"].removeprefix(REF)
    nullable = node.pop("nullable", False)
    for key in ("description", "x-oneof"):
        node.pop(key, None)
    if "allOf" in node and len(node["allOf"]) == 1 and "$ref" in node["allOf"][0]:
        # A nullable reference: the referred object inline, so that errors name the field inside it.
        target = REQUEST_SCHEMAS[node.pop("allOf")[0]["$ref"].removeprefix(REF)]
        node = {**copy.deepcopy(target), **node}
    for key in ("oneOf", "anyOf"):
        merged = _merge_by_type(node.get(key))
        if merged is not None:
            del node[key]
            node.update(merged)
    node = {key: _convert(value) if key not in ("enum", "required") else value for key, value in node.items()}
    if nullable and "type" in node:
        types = node["type"] if isinstance(node["type"], list) else [node["type"]]
        node["type"] = types + ["null"]
    return node


def _merge_by_type(alternatives):
    """Alternatives of distinct types are one schema with a list of types (JSON Schema's keywords each
    apply to one type): an error then names the field inside an array rather than the array."""
    if not alternatives:
        return None
    types = [alt.get("type") for alt in alternatives]
    if any(not isinstance(t, str) for t in types) or len(set(types)) != len(types):
        return None
    merged = {"type": types}
    for alt in alternatives:
        for key, value in alt.items():
            if key != "type":
                if key in merged:
                    return None
                merged[key] = value
    return merged
