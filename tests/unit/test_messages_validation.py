"""gomodel.gateway.ingress.messages_validation: /v1/messages bodies against the declared anthropic.* schemas.
What Anthropic documents passes (including types newer than the gateway); what is malformed is a 400
naming the place."""

import pytest

from gomodel.gateway.errors import GatewayError
from gomodel.gateway.ingress.messages_validation import validate_count_tokens, validate_messages
from tests.e2e.test_messages_anthropic import claude_code_body

HELLO = [{"role": "user", "content": "Hello"}]


def refusal(validate, body) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        validate(body)
    assert info.value.status == 400 and info.value.type == "invalid_request_error"
    return info.value


@pytest.mark.parametrize("extra", [
    {},
    {"max_tokens": 0},  # pre-warms the prompt cache
    {"thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}},
    {"thinking": {"type": "between_tools"}},  # a type newer than the gateway: Anthropic judges it
    {"tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}]},
    {"tools": [{"type": "custom", "name": "f", "input_schema": {"type": "object"}}], "tool_choice": {"type": "any"}},
    {"messages": [{"role": "user", "content": [{"type": "search_result", "source": "s", "title": "t",
                                                "content": [{"type": "text", "text": "x"}]}]}]},
    {"system": None, "tools": None, "stream": None, "metadata": {"user_id": None}},
])
def test_what_anthropic_documents_passes(extra):
    validate_messages({"model": "claude-opus-4-6", "max_tokens": 10, "messages": HELLO, **extra})


def test_a_claude_code_request_passes_and_count_tokens_needs_no_max_tokens():
    validate_messages(claude_code_body("anthropic/claude-opus-4-6"))
    validate_count_tokens({"model": "claude-opus-4-6", "messages": HELLO})
    assert refusal(validate_messages, {"model": "claude-opus-4-6", "messages": HELLO}).param == "max_tokens"


@pytest.mark.parametrize("body, param", [
    ({"model": "claude opus", "max_tokens": 1, "messages": HELLO}, "model"),
    ({"model": "m" * 257, "max_tokens": 1, "messages": HELLO}, "model"),
    ({"model": "m", "max_tokens": True, "messages": HELLO}, "max_tokens"),
    ({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text"}]}]}]},
     "messages[0].content[0].content[0]"),
    ({"model": "m", "max_tokens": 1, "messages": [{"role": "assistant", "content": [
        {"type": "tool_use", "id": "t", "name": "f", "input": []}]}]}, "messages[0].content[0].input"),
    ({"model": "m", "max_tokens": 1, "messages": HELLO, "tool_choice": {"type": "tool"}}, "tool_choice"),
    ({"model": "m", "max_tokens": 1, "messages": HELLO, "top_k": -1}, "top_k"),
    ({"model": "m", "max_tokens": 1, "messages": HELLO, "provider": "a b"}, "provider"),
])
def test_malformed_bodies_name_the_place(body, param):
    assert refusal(validate_messages, body).param == param


# -- mid-conversation system messages (Claude Code 2.1), as Anthropic places them -----------------------------

SYS = {"role": "system", "content": "From now on, be brief."}
ASSISTANT = {"role": "assistant", "content": "Hi!"}
TOOL_USE = {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]}
TOOL_RESULT = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]}
SERVER_RESULT = {"role": "assistant", "content": [
    {"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {"query": "q"}},
    {"type": "web_search_tool_result", "tool_use_id": "s1", "content": []}]}


@pytest.mark.parametrize("messages", [
    [*HELLO, SYS],  # last
    [*HELLO, SYS, ASSISTANT],  # before the assistant's turn
    [*HELLO, {"role": "system", "content": [{"type": "text", "text": "<system-reminder>x</system-reminder>",
                                             "cache_control": {"type": "ephemeral"}}]}, ASSISTANT, *HELLO],
    [*HELLO, TOOL_USE, TOOL_RESULT, SYS],  # after tool results
    [*HELLO, SERVER_RESULT, SYS],  # after a paused turn ending in a server tool's result
    [*HELLO, SYS, {**SYS, "clear_at": "next_user_message"}, ASSISTANT],  # consecutive: one section
    [{"role": "system", "content": ""}, *HELLO],  # no content (an effort-only message): anywhere
    [*HELLO, {"role": "system", "content": [{"type": "tool_addition", "tool": {"type": "tool_reference",
                                                                              "name": "f"}}]}],  # a beta block
])
def test_system_messages_pass_where_anthropic_takes_them(messages):
    validate_messages({"model": "m", "max_tokens": 10, "messages": messages})
    validate_count_tokens({"model": "m", "messages": messages})


@pytest.mark.parametrize("messages, param, words", [
    ([SYS, *HELLO], "messages[0]", "cannot be the first message"),
    ([*HELLO, ASSISTANT, SYS], "messages[2]", "must immediately follow a user turn"),
    ([*HELLO, TOOL_USE, SYS, TOOL_RESULT], "messages[2]", "must immediately follow a user turn"),
    ([*HELLO, SYS, *HELLO], "messages[1]", "followed by an assistant turn"),
    ([*HELLO, SYS, {"role": "system", "content": "more"}, *HELLO], "messages[1]", "followed by an assistant turn"),
    ([*HELLO, {"role": "system", "content": [{"type": "image", "source": {"type": "url", "url": "https://x/a.png"}}]}],
     "messages[1].content[0]", "text blocks only"),
])
def test_system_messages_anthropic_refuses_are_a_400(messages, param, words):
    for validate, extra in ((validate_messages, {"max_tokens": 10}), (validate_count_tokens, {})):
        error = refusal(validate, {"model": "m", "messages": messages, **extra})
        assert error.param == param and words in error.message


def test_other_roles_are_still_refused():
    error = refusal(validate_messages, {"model": "m", "max_tokens": 1, "messages": [{"role": "tool", "content": "x"}]})
    assert error.param == "messages[0].role"
