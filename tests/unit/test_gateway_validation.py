"""gomodel.gateway.validation: every bad /v1/chat/completions body is a 400 naming its field."""

import orjson
import pytest

from gomodel.gateway.errors import GatewayError
from gomodel.gateway.json_body import parse_json_object
from gomodel.gateway.validation import validate_chat

HELLO = [{"role": "user", "content": "Hello"}]


def error_of(call, *args) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        call(*args)
    err = caught.value
    assert err.status == 400 and err.type == "invalid_request_error"
    assert err.payload() == {"error": {"type": "invalid_request_error", "message": err.message,
                                       "param": err.param, "code": err.code}}
    return err


@pytest.mark.parametrize("raw", [b"", b"   \n", b"{", b"{'a': 1}", b"[]", b"[{}]", b"1", b"null", b'"s"',
                                 b"\xff\xfe"])
def test_parse_json_object_rejects(raw):
    err = error_of(parse_json_object, raw)
    assert err.param is None and err.code == "invalid_json"


def test_parse_json_object_accepts_an_object():
    assert parse_json_object(b' {"model": "m"} ') == {"model": "m"}


@pytest.mark.parametrize("body, param, code", [
    ({"messages": HELLO}, "model", "missing_required_parameter"),
    ({"model": None, "messages": HELLO}, "model", "missing_required_parameter"),
    ({"model": 4, "messages": HELLO}, "model", "invalid_type"),
    ({"model": ["gpt"], "messages": HELLO}, "model", "invalid_type"),
    ({"model": "  ", "messages": HELLO}, "model", "invalid_type"),
    ({"model": "m"}, "messages", "missing_required_parameter"),
    ({"model": "m", "messages": "hi"}, "messages", "invalid_type"),
    ({"model": "m", "messages": []}, "messages", "invalid_type"),
    ({"model": "m", "messages": [HELLO[0], 3]}, "messages[1]", "invalid_type"),
    ({"model": "m", "messages": [{"role": "", "content": "x"}]}, "messages[0].role", "invalid_type"),
    ({"model": "m", "messages": [{"role": "user", "content": {"text": "x"}}]}, "messages[0].content",
     "invalid_type"),
    ({"model": "m", "messages": HELLO, "stream": "true"}, "stream", "invalid_type"),
    ({"model": "m", "messages": HELLO, "stream": 0}, "stream", "invalid_type"),
    ({"model": "m", "messages": HELLO, "stream_options": True}, "stream_options", "invalid_type"),
    ({"model": "m", "messages": HELLO, "stream_options": {"include_usage": 1}}, "stream_options.include_usage",
     "invalid_type"),
    ({"model": "m", "messages": HELLO, "provider": ""}, "provider", "invalid_type"),
    ({"model": "m", "messages": HELLO, "max_tokens": -1}, "max_tokens", "invalid_type"),
    ({"model": "m", "messages": HELLO, "max_tokens": 1.5}, "max_tokens", "invalid_type"),
    ({"model": "m", "messages": HELLO, "max_tokens": True}, "max_tokens", "invalid_type"),
    ({"model": "m", "messages": HELLO, "max_completion_tokens": 0}, "max_completion_tokens", "invalid_type"),
    ({"model": "m", "messages": HELLO, "temperature": True}, "temperature", "invalid_type"),
    ({"model": "m", "messages": HELLO, "top_p": "0.9"}, "top_p", "invalid_type"),
    ({"model": "m", "messages": HELLO, "parallel_tool_calls": "yes"}, "parallel_tool_calls", "invalid_type"),
    ({"model": "m", "messages": HELLO, "tools": {"type": "function"}}, "tools", "invalid_type"),
    ({"model": "m", "messages": HELLO, "tools": ["get_weather"]}, "tools[0]", "invalid_type"),
    ({"model": "m", "messages": HELLO, "tool_choice": 1}, "tool_choice", "invalid_type"),
    ({"model": "m", "messages": HELLO, "user": 42}, "user", "invalid_type"),
    ({"model": "m", "messages": HELLO, "service_tier": 1}, "service_tier", "invalid_type"),
    ({"model": "m", "messages": HELLO, "reasoning": "high"}, "reasoning", "invalid_type"),
    ({"model": "m", "messages": HELLO, "reasoning": {"effort": "ultra"}}, "reasoning.effort", "invalid_value"),
    ({"model": "m", "messages": HELLO, "reasoning_effort": 2}, "reasoning_effort", "invalid_type"),
])
def test_validate_chat_names_the_field(body, param, code):
    err = error_of(validate_chat, body)
    assert (err.param, err.code) == (param, code)
    assert f"'{param}'" in err.message


@pytest.mark.parametrize("body", [
    {"model": "m", "messages": HELLO},
    {"model": "openrouter/meta-llama/llama-3.1-8b-instruct", "messages": HELLO, "provider": "openrouter"},
    {"model": "m", "messages": [{"role": "assistant", "content": None, "tool_calls": []}]},
    {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
    {"model": "m", "messages": HELLO, "stream": True, "stream_options": {"include_usage": True}},
    {"model": "m", "messages": HELLO, "stream": None, "temperature": None, "max_tokens": None},
    {"model": "m", "messages": HELLO, "max_tokens": 10, "temperature": 0, "top_p": 1.0, "parallel_tool_calls": False,
     "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "auto", "user": "u",
     "service_tier": "auto", "reasoning": {"effort": "xhigh"}, "reasoning_effort": "minimal"},
    {"model": "m", "messages": HELLO, "logit_bias": {"1": 2}, "x_anything": object()},  # unknown fields pass
])
def test_validate_chat_accepts(body):
    assert validate_chat(body) is None


def test_every_reasoning_effort_of_the_seed_is_accepted():
    for effort in ("low", "medium", "high", "xhigh", "max"):
        validate_chat({"model": "m", "messages": HELLO, "reasoning": {"effort": effort}})


def test_error_body_is_the_envelope():
    err = error_of(validate_chat, {"model": "m"})
    assert orjson.loads(err.body()) == {"error": {"type": "invalid_request_error", "message": "'messages' is required.",
                                                  "param": "messages", "code": "missing_required_parameter"}}


def test_the_document_and_the_validator_share_one_declaration():
    """The served /openapi.json's request schemas are the declaration the validator is compiled from."""
    from gomodel.api.openapi import openapi_document
    from gomodel.gateway import validation
    from gomodel.gateway.request_schema import REQUEST_SCHEMAS, json_schema

    schemas = openapi_document()["components"]["schemas"]
    for name, declared in REQUEST_SCHEMAS.items():
        assert schemas[name] == declared, name
    assert validation.CHAT.schema == json_schema("core.ChatRequest")
    assert validation.EMBEDDINGS.schema == json_schema("core.EmbeddingRequest")
    # What the hand-kept copies had drifted on: a message's `name` is checked and now documented too.
    assert "name" in schemas["core.Message"]["properties"]
    err = error_of(validate_chat, {"model": "m", "messages": [{"role": "user", "content": "hi", "name": 5}]})
    assert (err.param, err.code) == ("messages[0].name", "invalid_type")


@pytest.mark.parametrize("body, param, code", [
    ({"model": "m" * 257, "messages": HELLO}, "model", "invalid_value"),
    ({"model": "gpt 4o", "messages": HELLO}, "model", "invalid_value"),
    ({"model": "m", "messages": HELLO, "provider": "a\nb"}, "provider", "invalid_value"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content[0]",
     "invalid_type"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": 1}}]}]},
     "messages[0].content[0].image_url.url", "invalid_type"),
    ({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"function": {"arguments": {}}}]}]},
     "messages[0].tool_calls[0].function.arguments", "invalid_type"),
])
def test_deeper_fields_are_named(body, param, code):
    err = error_of(validate_chat, body)
    assert (err.param, err.code) == (param, code)
    assert len(err.message) < 200  # the value itself is never echoed
