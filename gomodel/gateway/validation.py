"""Request-body checks for the /v1 endpoints: bad input is a 400 naming the field, before any upstream
call. The rules are the published schemas (request_schema.py), compiled once with jsonschema_rs; a
valid body costs one `is_valid` call. Only a refused body pays for finding and wording its error.
Fields the gateway does not know pass through untouched."""

from typing import Any

import jsonschema_rs

from .errors import invalid
from .request_schema import json_schema

_TYPES = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "a boolean",
          "object": "an object", "array": "an array"}
# What a missing field is called when it is sent as null: the required top-level fields.
_REQUIRED = frozenset(("model", "messages", "input"))


class Schema:
    """One request schema, compiled; `check(body)` raises the 400 of its first error."""

    def __init__(self, name: str):
        self.name = name
        self.schema = json_schema(name)
        self.validator = jsonschema_rs.validator_for(self.schema)

    def check(self, body: dict[str, Any]) -> None:
        if self.validator.is_valid(body):
            return
        error = next(iter(self.validator.iter_errors(body)))
        raise self._refusal(error, body)

    def _refusal(self, error, body):
        path = list(error.instance_path)
        kind = type(error.kind).__name__
        if kind == "Required":
            path.append(error.kind.property)
            param = _param(path)
            return invalid(f"'{param}' is required.", param=param, code="missing_required_parameter")
        param = _param(path)
        value = _at(body, path)
        node = self._node(list(error.schema_path)[:-1])
        if value is None and len(path) == 1 and path[0] in _REQUIRED:
            return invalid(f"'{param}' is required.", param=param, code="missing_required_parameter")
        hint = node.get("x-invalid")
        if kind in ("Enum",):
            allowed = ", ".join(str(v) for v in node["enum"] if v is not None)
            return invalid(f"'{param}' must be one of {allowed}.", param=param, code="invalid_value")
        if kind in ("MaxLength", "Pattern") and isinstance(value, str) and value.strip():
            return invalid(f"'{param}' must be {hint or 'a valid value'}.", param=param, code="invalid_value")
        return invalid(f"'{param}' must be {hint or _expected(node)}.", param=param, code="invalid_type")

    def _node(self, schema_path: list) -> dict:
        """The (sub)schema an error's keyword sits in, following $refs as the validator did."""
        node = self.schema
        for key in schema_path:
            if key == "$ref":
                node = self.schema["$defs"][node["$ref"].removeprefix("#/$defs/")]
                continue
            node = node[key]
        return node if isinstance(node, dict) else {}


def _param(path: list) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _at(body, path: list):
    for part in path:
        try:
            body = body[part]
        except (KeyError, IndexError, TypeError):
            return None
    return body


def _expected(node: dict) -> str:
    types = node.get("type")
    types = [t for t in (types if isinstance(types, list) else [types]) if t and t != "null"]
    words = " or ".join(_TYPES.get(t, t) for t in types) or "a valid value"
    if "minimum" in node:
        words += f" of at least {node['minimum']}"
    if node.get("minItems") == 1 or node.get("minLength") == 1:
        words = "a non-empty " + words.removeprefix("an ").removeprefix("a ")
    if "enum" in node:
        words = "one of " + ", ".join(str(v) for v in node["enum"] if v is not None)
    return words


CHAT = Schema("core.ChatRequest")
EMBEDDINGS = Schema("core.EmbeddingRequest")
validate_chat = CHAT.check
validate_embeddings = EMBEDDINGS.check
