"""Request-body checks for POST /v1/responses: bad input is a 400 naming the field, before any
upstream call. Item and tool types the gateway does not know pass (a native upstream may take them;
translation to chat refuses them with a 400 of its own)."""

from typing import Any

from .errors import invalid

EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
ROLES = ("user", "assistant", "system", "developer")
TOOL_CHOICES = ("none", "auto", "required")
TEXT_FORMATS = ("text", "json_schema", "json_object")
MAX_METADATA_KEYS = 16


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fail(param: str, expected: str, code: str = "invalid_type"):
    raise invalid(f"'{param}' must be {expected}.", param=param, code=code)


def _field(obj: dict, name: str, ok, expected: str, where: str = "", required: bool = False):
    param = f"{where}.{name}" if where else name
    if obj.get(name) is None:
        if required:
            raise invalid(f"'{param}' is required.", param=param, code="missing_required_parameter")
        return
    if not ok(obj[name]):
        _fail(param, expected)


def _is_str(value) -> bool:
    return isinstance(value, str)


def _validate_content(content, where: str):
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        _fail(where, "a string or an array of content parts")
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            _fail(at, "an object with a string 'type'")
        kind = part["type"]
        if kind in ("input_text", "output_text"):
            _field(part, "text", _is_str, "a string", at, required=True)
        elif kind == "input_image":
            _field(part, "image_url", _is_str, "a string", at)
            _field(part, "file_id", _is_str, "a string", at)
            _field(part, "detail", lambda v: v in ("low", "high", "auto"), "'low', 'high' or 'auto'", at)
            if part.get("image_url") is None and part.get("file_id") is None:
                raise invalid(f"'{at}' needs an image_url or a file_id.", param=f"{at}.image_url",
                              code="missing_required_parameter")


def _validate_item(item, at: str):
    if not isinstance(item, dict):
        _fail(at, "an object")
    kind = item.get("type")
    if kind is None and "role" in item:
        kind = "message"
    if not isinstance(kind, str) or not kind:
        _fail(f"{at}.type", "a non-empty string")
    if kind == "message":
        if item.get("role") not in ROLES:
            _fail(f"{at}.role", "one of " + ", ".join(ROLES), code="invalid_value")
        if "content" not in item:
            raise invalid(f"'{at}.content' is required.", param=f"{at}.content", code="missing_required_parameter")
        _validate_content(item["content"], f"{at}.content")
    elif kind == "function_call":
        _field(item, "call_id", _is_str, "a string", at, required=True)
        _field(item, "name", _is_str, "a string", at, required=True)
        _field(item, "arguments", _is_str, "a string", at, required=True)
    elif kind == "function_call_output":
        _field(item, "call_id", _is_str, "a string", at, required=True)
        if item.get("output") is None:
            raise invalid(f"'{at}.output' is required.", param=f"{at}.output", code="missing_required_parameter")
        _validate_content(item["output"], f"{at}.output")


def _validate_tools(tools):
    if not isinstance(tools, list):
        _fail("tools", "an array of tools")
    for i, tool in enumerate(tools):
        at = f"tools[{i}]"
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            _fail(at, "an object with a string 'type'")
        if tool["type"] == "function":
            _field(tool, "name", lambda v: isinstance(v, str) and v != "", "a non-empty string", at, required=True)
            _field(tool, "description", _is_str, "a string", at)
            _field(tool, "parameters", lambda v: isinstance(v, dict), "an object (a JSON schema)", at)
            _field(tool, "strict", lambda v: isinstance(v, bool), "a boolean", at)


def _validate_text(text):
    if not isinstance(text, dict):
        _fail("text", "an object")
    fmt = text.get("format")
    if fmt is None:
        return
    if not isinstance(fmt, dict) or fmt.get("type") not in TEXT_FORMATS:
        _fail("text.format", "an object whose type is one of " + ", ".join(TEXT_FORMATS))
    if fmt["type"] == "json_schema":
        _field(fmt, "name", lambda v: isinstance(v, str) and v != "", "a non-empty string", "text.format",
               required=True)
        _field(fmt, "schema", lambda v: isinstance(v, dict), "an object (a JSON schema)", "text.format", required=True)
        _field(fmt, "strict", lambda v: isinstance(v, bool), "a boolean", "text.format")


def validate_responses(body: dict[str, Any]) -> None:
    _field(body, "model", lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string", required=True)
    value = body.get("input")
    if value is None and not body.get("previous_response_id"):
        raise invalid("'input' is required.", param="input", code="missing_required_parameter")
    if value is not None:
        if isinstance(value, str):
            if not value:
                _fail("input", "a non-empty string or an array of items")
        elif isinstance(value, list) and value:
            for i, item in enumerate(value):
                _validate_item(item, f"input[{i}]")
        else:
            _fail("input", "a non-empty string or an array of items")
    _field(body, "instructions", _is_str, "a string")
    if body.get("tools") is not None:
        _validate_tools(body["tools"])
    choice = body.get("tool_choice")
    if choice is not None and not (choice in TOOL_CHOICES or (isinstance(choice, dict)
                                                                and isinstance(choice.get("type"), str))):
        _fail("tool_choice", "'none', 'auto', 'required' or an object with a type")
    if isinstance(choice, dict) and choice["type"] == "function":
        _field(choice, "name", lambda v: isinstance(v, str) and v != "", "a non-empty string", "tool_choice",
               required=True)
    _field(body, "max_output_tokens", lambda v: _is_int(v) and v > 0, "a positive integer")
    _field(body, "temperature", lambda v: _is_number(v) and 0 <= v <= 2, "a number from 0 to 2")
    _field(body, "top_p", lambda v: _is_number(v) and 0 <= v <= 1, "a number from 0 to 1")
    _field(body, "reasoning", lambda v: isinstance(v, dict), "an object")
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort") is not None and reasoning["effort"] not in EFFORTS:
        _fail("reasoning.effort", "one of " + ", ".join(EFFORTS), code="invalid_value")
    if body.get("text") is not None:
        _validate_text(body["text"])
    for name in ("parallel_tool_calls", "store", "stream"):
        _field(body, name, lambda v: isinstance(v, bool), "a boolean")
    metadata = body.get("metadata")
    if metadata is not None and not (isinstance(metadata, dict) and len(metadata) <= MAX_METADATA_KEYS
                                     and all(isinstance(v, str) for v in metadata.values())):
        _fail("metadata", f"an object of at most {MAX_METADATA_KEYS} string values")
    _field(body, "previous_response_id", lambda v: isinstance(v, str) and 0 < len(v) <= 64,
           "a response id (a string of at most 64 characters)")
    if body.get("background") is True:  # the gateway answers while it waits; there is nothing to poll
        raise invalid("'background' responses are not supported by the gateway; send background: false.",
                      param="background", code="unsupported_value")
    _field(body, "provider", lambda v: isinstance(v, str) and v != "", "a non-empty string")
    _field(body, "user", _is_str, "a string")
