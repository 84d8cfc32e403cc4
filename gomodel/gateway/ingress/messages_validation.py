"""Request-body checks for /v1/messages and /v1/messages/count_tokens, after Anthropic's Messages API
reference: bad input is a 400 naming the field, before any upstream call. Block types and fields the
gateway does not know pass through untouched (an Anthropic target judges them)."""

from ..errors import invalid

ROLES = ("user", "assistant")
TOOL_CHOICES = ("auto", "any", "tool", "none")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_str(value) -> bool:
    return isinstance(value, str)


def _is_dict(value) -> bool:
    return isinstance(value, dict)


def _need(obj: dict, name: str, ok, expected: str, where: str):
    if name not in obj or obj[name] is None:
        raise invalid(f"'{where}{name}' is required.", param=f"{where}{name}", code="missing_required_parameter")
    _may(obj, name, ok, expected, where)


def _may(obj: dict, name: str, ok, expected: str, where: str = ""):
    if name in obj and obj[name] is not None and not ok(obj[name]):
        raise invalid(f"'{where}{name}' must be {expected}.", param=f"{where}{name}", code="invalid_type")


def _is_bool(value) -> bool:
    return isinstance(value, bool)


def _is_str_or_list(value) -> bool:
    return isinstance(value, (str, list))


# Per block type: (field, check, what it must be, required). A block's path is built only for an error
# message: Claude Code sends hundreds of blocks a request, and this runs on every one.
BLOCK_FIELDS = {
    "text": (("text", _is_str, "a string", True),),
    "tool_use": (("id", _is_str, "a string", True), ("name", _is_str, "a string", True),
                 ("input", _is_dict, "an object", True)),
    "tool_result": (("tool_use_id", _is_str, "a string", True),
                    ("content", _is_str_or_list, "a string or an array of blocks", False),
                    ("is_error", _is_bool, "a boolean", False)),
    "thinking": (("thinking", _is_str, "a string", True), ("signature", _is_str, "a string", True)),
    "redacted_thinking": (("data", _is_str, "a string", True),),
}
SOURCE_KINDS = {"image": ("base64", "url", "file"), "document": ("base64", "url", "text", "content", "file")}
SOURCE_FIELDS = {"base64": (("media_type", _is_str, "a string", True), ("data", _is_str, "a string", True)),
                 "url": (("url", _is_str, "a string", True),), "text": (("data", _is_str, "a string", True),)}


def _fields(obj: dict, fields: tuple, at):
    """`at()` names obj (for the message); a field that is absent or null counts as missing."""
    for name, ok, expected, required in fields:
        value = obj.get(name)
        if value is None:
            if required:
                raise invalid(f"'{at()}.{name}' is required.", param=f"{at()}.{name}", code="missing_required_parameter")
        elif not ok(value):
            raise invalid(f"'{at()}.{name}' must be {expected}.", param=f"{at()}.{name}", code="invalid_type")


def _source(block: dict, at, kinds: tuple[str, ...]):
    source = block.get("source")
    if not isinstance(source, dict):
        raise invalid(f"'{at()}.source' must be an object.", param=f"{at()}.source", code="invalid_type")
    kind = source.get("type")
    if kind not in kinds:
        raise invalid(f"'{at()}.source.type' must be one of {', '.join(kinds)}.", param=f"{at()}.source.type",
                      code="invalid_value")
    _fields(source, SOURCE_FIELDS.get(kind, ()), lambda: f"{at()}.source")


def _block(block, at):
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise invalid(f"'{at()}' must be an object with a string 'type'.", param=at(), code="invalid_type")
    kind = block["type"]
    cache_control = block.get("cache_control")
    if cache_control is not None and not isinstance(cache_control, dict):
        raise invalid(f"'{at()}.cache_control' must be an object.", param=f"{at()}.cache_control",
                      code="invalid_type")
    fields = BLOCK_FIELDS.get(kind)
    if fields is not None:
        _fields(block, fields, at)
    elif kind in SOURCE_KINDS:
        _source(block, at, SOURCE_KINDS[kind])
    if kind == "tool_result" and isinstance(block.get("content"), list):
        for k, inner in enumerate(block["content"]):
            _block(inner, lambda: f"{at()}.content[{k}]")


def _messages(body: dict):
    messages = body.get("messages")
    if messages is None:
        raise invalid("'messages' is required.", param="messages", code="missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        raise invalid("'messages' must be a non-empty array.", param="messages", code="invalid_type")
    for i, message in enumerate(messages):
        at = f"messages[{i}]"
        if not isinstance(message, dict):
            raise invalid(f"'{at}' must be an object.", param=at, code="invalid_type")
        if message.get("role") not in ROLES:
            raise invalid(f"'{at}.role' must be 'user' or 'assistant' (the system prompt goes in 'system').",
                          param=f"{at}.role", code="invalid_value")
        content = message.get("content")
        if isinstance(content, list):
            for j, block in enumerate(content):
                _block(block, lambda: f"messages[{i}].content[{j}]")
        elif not isinstance(content, str):
            raise invalid(f"'{at}.content' must be a string or an array of content blocks.", param=f"{at}.content",
                          code="invalid_type")


def _system(body: dict):
    system = body.get("system")
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise invalid("'system' must be a string or an array of text blocks.", param="system", code="invalid_type")
    for i, block in enumerate(system):
        at = f"system[{i}]"
        if not isinstance(block, dict) or block.get("type") != "text":
            raise invalid(f"'{at}' must be a text block.", param=at, code="invalid_type")
        _block(block, lambda: at)


def _tools(body: dict):
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise invalid("'tools' must be an array of tools.", param="tools", code="invalid_type")
    for i, tool in enumerate(tools or ()):
        at = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise invalid(f"'{at}' must be an object.", param=at, code="invalid_type")
        _need(tool, "name", lambda v: isinstance(v, str) and v != "", "a non-empty string", f"{at}.")
        if tool.get("type") in (None, "custom"):  # a client tool; server tools have a dated type
            _need(tool, "input_schema", _is_dict, "an object (a JSON Schema)", f"{at}.")
        _may(tool, "description", _is_str, "a string", f"{at}.")
        _may(tool, "cache_control", _is_dict, "an object", f"{at}.")
    choice = body.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, dict) or choice.get("type") not in TOOL_CHOICES:
            raise invalid(f"'tool_choice' must be an object whose 'type' is one of {', '.join(TOOL_CHOICES)}.",
                          param="tool_choice", code="invalid_value")
        if choice["type"] == "tool":
            _need(choice, "name", _is_str, "a string", "tool_choice.")
        _may(choice, "disable_parallel_tool_use", lambda v: isinstance(v, bool), "a boolean", "tool_choice.")


def _thinking(body: dict):
    thinking = body.get("thinking")
    if thinking is None:
        return
    # Types past enabled/disabled/adaptive (between_tools, …) keep coming: an Anthropic target judges them.
    if not isinstance(thinking, dict) or not isinstance(thinking.get("type"), str):
        raise invalid("'thinking' must be an object with a string 'type' (enabled, disabled, adaptive, …).",
                      param="thinking", code="invalid_type")
    if thinking["type"] == "enabled":
        _need(thinking, "budget_tokens", lambda v: _is_int(v) and v >= 1024, "an integer of at least 1024",
              "thinking.")


def validate_count_tokens(body: dict) -> None:
    model = body.get("model")
    if model is None:
        raise invalid("'model' is required.", param="model", code="missing_required_parameter")
    if not isinstance(model, str) or not model.strip():
        raise invalid("'model' must be a non-empty string.", param="model", code="invalid_type")
    _messages(body)
    _system(body)
    _tools(body)
    _thinking(body)
    _may(body, "provider", lambda v: isinstance(v, str) and v != "", "a non-empty string")


def validate_messages(body: dict) -> None:
    validate_count_tokens(body)
    # 0 is allowed: it pre-warms the prompt cache without generating (Anthropic's documented use).
    _need(body, "max_tokens", lambda v: _is_int(v) and v >= 0, "a non-negative integer", "")
    _may(body, "stream", lambda v: isinstance(v, bool), "a boolean")
    _may(body, "stop_sequences", lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v),
         "an array of strings")
    _may(body, "temperature", _is_number, "a number")
    _may(body, "top_p", _is_number, "a number")
    _may(body, "top_k", lambda v: _is_int(v) and v >= 0, "a non-negative integer")
    _may(body, "metadata", _is_dict, "an object")
    if isinstance(body.get("metadata"), dict):
        _may(body["metadata"], "user_id", _is_str, "a string", "metadata.")
