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
