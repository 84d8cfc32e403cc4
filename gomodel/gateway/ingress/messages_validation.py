"""Request-body checks for /v1/messages and /v1/messages/count_tokens: the published schemas
(request_schema.py, `anthropic.*`, after Anthropic's Messages API reference), compiled once as chat's
are (validation.py). Bad input is a 400 naming the field, before any upstream call; block types and
fields the gateway does not know pass through untouched (an Anthropic target judges them).

Mid-conversation system messages (`{"role": "system"}` inside `messages`, which Claude Code 2.1 sends) are
checked as Anthropic documents them (platform.claude.com, "Mid-conversation system messages"): the content is
a string or text blocks (`tool_addition`/`tool_removal` blocks, a beta, are left to an Anthropic target); a run
of consecutive system messages that carries content is judged as one section, which may not open `messages`,
must immediately follow a `user` turn (tool results included) or an `assistant` turn ending in a server tool's
result, and must be followed by an `assistant` turn or end the array. A system message without content (one
that only sets `output_config`) may stand anywhere.
"""

from typing import Any

from ..errors import invalid
from ..validation import Schema

MESSAGES = Schema("anthropic.MessagesRequest")
COUNT_TOKENS = Schema("anthropic.CountTokensRequest")
SYSTEM_BLOCKS = frozenset(("text", "tool_addition", "tool_removal"))


def validate_messages(body: dict[str, Any]) -> None:
    MESSAGES.check(body)
    check_system_messages(body["messages"])


def validate_count_tokens(body: dict[str, Any]) -> None:
    COUNT_TOKENS.check(body)
    check_system_messages(body["messages"])


def _carries_content(message: dict) -> bool:
    return bool(message.get("content"))


def _ends_in_server_tool_result(message: dict) -> bool:
    content = message.get("content")
    if not isinstance(content, list) or not content or not isinstance(content[-1], dict):
        return False
    kind = content[-1].get("type")
    return isinstance(kind, str) and kind.endswith("_tool_result") and kind != "tool_result"


def check_system_messages(messages: list) -> None:
    """Anthropic's rules for `role: "system"` messages (the schema has already checked the shapes)."""
    i, count = 0, len(messages)
    while i < count:
        if messages[i]["role"] != "system":
            i += 1
            continue
        end = i
        while end < count and messages[end]["role"] == "system":
            content = messages[end]["content"]
            if isinstance(content, list):
                for j, block in enumerate(content):
                    if block["type"] not in SYSTEM_BLOCKS:
                        raise invalid(f"'messages[{end}].content[{j}]': a system message takes text blocks only, "
                                      f"not '{block['type']}'.", param=f"messages[{end}].content[{j}]",
                                      code="invalid_value")
            end += 1
        if any(_carries_content(m) for m in messages[i:end]):
            param = f"messages[{i}]"
            if i == 0:
                raise invalid(f"'{param}': a system message cannot be the first message; put instructions that "
                              "apply from the start in the top-level 'system' field.", param=param,
                              code="invalid_value")
            before = messages[i - 1]
            if before["role"] != "user" and not (before["role"] == "assistant"
                                                 and _ends_in_server_tool_result(before)):
                raise invalid(f"'{param}': a system message must immediately follow a user turn (or an assistant "
                              "turn ending in a server tool result).", param=param, code="invalid_value")
            if end < count and messages[end]["role"] != "assistant":
                raise invalid(f"'{param}': a system message must be followed by an assistant turn or be the last "
                              "message.", param=param, code="invalid_value")
        i = end
