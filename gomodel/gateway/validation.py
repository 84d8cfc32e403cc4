"""Request-body checks for /v1/chat/completions: bad input is a 400 naming the field, before any
upstream call. Fields the gateway does not know pass through untouched."""

from .errors import invalid

REASONING_EFFORTS = ("low", "medium", "high", "xhigh", "max")
# Model and provider names reach logs, error messages and the usage stream: bounded, one printable
# token (no whitespace, no control characters). Real ids are well under 100 characters.
NAME_MAX = 256


def check_name(body: dict, name: str, required: bool) -> None:
    value = body.get(name)
    if value is None:
        if required:
            raise invalid(f"'{name}' is required.", param=name, code="missing_required_parameter")
        return
    if not isinstance(value, str) or not value.strip():
        raise invalid(f"'{name}' must be a non-empty string.", param=name, code="invalid_type")
    if len(value) > NAME_MAX or not value.isprintable() or " " in value:
        raise invalid(f"'{name}' must be at most {NAME_MAX} printable characters without spaces.", param=name,
                      code="invalid_value")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_type(body: dict, name: str, ok, expected: str):
    if name in body and body[name] is not None and not ok(body[name]):
        raise invalid(f"'{name}' must be {expected}.", param=name, code="invalid_type")


# The seed's ContentPart objects and their string fields (core.ImageURLContent, core.InputAudioContent).
PART_OBJECTS = {"image_url": ("url", "detail", "media_type"), "input_audio": ("data", "format")}


def _optional(obj: dict, name: str, ok, expected: str, where: str, nullable: bool = False):
    """A present field must have its type; null counts as absent only where `nullable` says so (a
    message's own optional fields, which some clients send as null)."""
    if name in obj and not (nullable and obj[name] is None) and not ok(obj[name]):
        raise invalid(f"'{where}.{name}' must be {expected}.", param=f"{where}.{name}", code="invalid_type")


def _is_str(value) -> bool:
    return isinstance(value, str)


def _validate_message(message: dict, where: str) -> None:
    content = message.get("content")
    if content is not None and not isinstance(content, (str, list)):
        raise invalid(f"'{where}.content' must be a string, an array of parts or null.", param=f"{where}.content",
                      code="invalid_type")
    if isinstance(content, list):
        for j, part in enumerate(content):
            at = f"{where}.content[{j}]"
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise invalid(f"'{at}' must be an object with a string 'type'.", param=at, code="invalid_type")
            _optional(part, "text", _is_str, "a string", at)
            for field, keys in PART_OBJECTS.items():
                _optional(part, field, lambda v: isinstance(v, dict), "an object", at)
                if isinstance(part.get(field), dict):
                    for key in keys:
                        _optional(part[field], key, _is_str, "a string", f"{at}.{field}")
            if part["type"] == "text" and not isinstance(part.get("text"), str):
                raise invalid(f"'{at}.text' must be a string.", param=f"{at}.text", code="invalid_type")
    _optional(message, "name", _is_str, "a string", where, nullable=True)
    _optional(message, "tool_call_id", _is_str, "a string", where, nullable=True)
    calls = message.get("tool_calls")
    if calls is not None:
        if not isinstance(calls, list):
            raise invalid(f"'{where}.tool_calls' must be an array.", param=f"{where}.tool_calls", code="invalid_type")
        for j, call in enumerate(calls):
            at = f"{where}.tool_calls[{j}]"
            if not isinstance(call, dict):
                raise invalid(f"'{at}' must be an object.", param=at, code="invalid_type")
            _optional(call, "id", _is_str, "a string", at)
            _optional(call, "type", _is_str, "a string", at)
            _optional(call, "function", lambda v: isinstance(v, dict), "an object", at)
            if isinstance(call.get("function"), dict):
                _optional(call["function"], "name", _is_str, "a string", f"{at}.function")
                _optional(call["function"], "arguments", _is_str, "a string", f"{at}.function")


def validate_chat(body: dict) -> None:
    check_name(body, "model", required=True)
    messages = body.get("messages")
    if messages is None:
        raise invalid("'messages' is required.", param="messages", code="missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        raise invalid("'messages' must be a non-empty array.", param="messages", code="invalid_type")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid(f"'messages[{i}]' must be an object.", param=f"messages[{i}]", code="invalid_type")
        role = message.get("role")
        if not isinstance(role, str) or not role:
            raise invalid(f"'messages[{i}].role' must be a non-empty string.", param=f"messages[{i}].role",
                          code="invalid_type")
        _validate_message(message, f"messages[{i}]")
    if "stream" in body and not isinstance(body["stream"], bool) and body["stream"] is not None:
        raise invalid("'stream' must be a boolean.", param="stream", code="invalid_type")
    _check_type(body, "stream_options", lambda v: isinstance(v, dict), "an object")
    options = body.get("stream_options")
    if isinstance(options, dict) and "include_usage" in options and not isinstance(options["include_usage"], bool):
        raise invalid("'stream_options.include_usage' must be a boolean.", param="stream_options.include_usage",
                      code="invalid_type")
    check_name(body, "provider", required=False)
    _check_type(body, "max_tokens", lambda v: _is_int(v) and v > 0, "a positive integer")
    _check_type(body, "max_completion_tokens", lambda v: _is_int(v) and v > 0, "a positive integer")
    _check_type(body, "temperature", _is_number, "a number")
    _check_type(body, "top_p", _is_number, "a number")
    _check_type(body, "parallel_tool_calls", lambda v: isinstance(v, bool), "a boolean")
    _check_type(body, "tools", lambda v: isinstance(v, list) and all(isinstance(t, dict) for t in v),
                "an array of objects")
    _check_type(body, "tool_choice", lambda v: isinstance(v, (str, dict)), "a string or an object")
    _check_type(body, "user", lambda v: isinstance(v, str), "a string")
    _check_type(body, "service_tier", lambda v: isinstance(v, str), "a string")
    _check_type(body, "reasoning", lambda v: isinstance(v, dict), "an object")
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort") is not None:
        if reasoning["effort"] not in REASONING_EFFORTS:
            raise invalid(f"'reasoning.effort' must be one of {', '.join(REASONING_EFFORTS)}.",
                          param="reasoning.effort", code="invalid_value")
    # OpenAI's own flat field also takes values such as "minimal": pass those through.
    _check_type(body, "reasoning_effort", lambda v: isinstance(v, str), "a string")


def _is_token_list(value) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_int(v) for v in value)


def validate_embeddings(body: dict) -> None:
    check_name(body, "model", required=True)
    if "input" not in body or body["input"] is None:
        raise invalid("'input' is required.", param="input", code="missing_required_parameter")
    value = body["input"]
    # One kind per request: a string, a token array, or an array of either (not a mix of both).
    ok = (isinstance(value, str) and value != "") or _is_token_list(value) or (
        isinstance(value, list) and bool(value) and (
            all(isinstance(v, str) and v != "" for v in value) or all(_is_token_list(v) for v in value)))
    if not ok:
        raise invalid("'input' must be a non-empty string, an array of strings, or token arrays.", param="input",
                      code="invalid_type")
    check_name(body, "provider", required=False)
    _check_type(body, "dimensions", lambda v: _is_int(v) and v > 0, "a positive integer")
    _check_type(body, "encoding_format", lambda v: v in ("float", "base64"), "'float' or 'base64'")
    _check_type(body, "user", lambda v: isinstance(v, str), "a string")
