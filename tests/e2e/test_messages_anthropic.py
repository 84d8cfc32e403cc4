"""POST /v1/messages driven by the official anthropic SDK against a fake Anthropic upstream
(tests/fake_anthropic.py): the request reaches Anthropic natively (only the model and key changed), the
answer comes back as Anthropic sent it, and the usage event bills what Anthropic counted."""

import asyncio
from pathlib import Path

import anthropic
import httpx
import orjson
import pytest

from tests.fake_anthropic import (
    COUNTED_INPUT_TOKENS,
    REPLY,
    STREAM_OUTPUT_TOKENS,
    STREAM_START_USAGE,
    THOUGHT,
    USAGE,
)

pytestmark = [pytest.mark.e2e]

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "recorded" / "anthropic"
UPSTREAM_KEY = "sk-ant-upstream"
HELLO = [{"role": "user", "content": "Hello"}]
WEATHER = {"name": "get_weather", "description": "Weather for a place",
           "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}
TIME = {"name": "get_time", "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}}}
JSON_PROMPT = USAGE["input_tokens"] + USAGE["cache_read_input_tokens"] + USAGE["cache_creation_input_tokens"]
STREAM_PROMPT = (STREAM_START_USAGE["input_tokens"] + STREAM_START_USAGE["cache_read_input_tokens"]
                 + STREAM_START_USAGE["cache_creation_input_tokens"])


@pytest.fixture
def fake(anthropic_server):
    anthropic_server.requests.clear()
    anthropic_server.recorded.clear()
    return anthropic_server


@pytest.fixture
def anthropic_provider(make_provider, fake):
    return make_provider(name="anthropic", provider_type="anthropic", base_url=fake.base_url, api_key=UPSTREAM_KEY)


@pytest.fixture
def client(gateway, anthropic_provider, tenant_key):
    return anthropic.Anthropic(base_url=gateway, api_key=tenant_key[2], max_retries=0)


def upstream_call(fake, path="/v1/messages") -> dict:
    [request] = [r for r in fake.requests if r["method"] == "POST"]
    assert request["path"] == path
    headers = request["headers"]
    assert headers["x-api-key"] == UPSTREAM_KEY
    assert "authorization" not in headers  # the tenant's key never reaches the provider
    return request


def assert_event(usage_events, request_id, prompt, completion, cached, stream, status=200, source="reported"):
    [event] = usage_events(request_id)
    assert (event["endpoint"], event["provider"], event["status"], event["stream"]) == (
        "/v1/messages", "anthropic", status, stream)
    assert (event["prompt_tokens"], event["completion_tokens"], event["cached_tokens"]) == (prompt, completion, cached)
    assert event["total_tokens"] == prompt + completion
    assert event["usage_source"] == source
    return event


def test_sync_create_reaches_anthropic_natively(client, fake, usage_events):
    raw = client.messages.with_raw_response.create(
        model="anthropic/claude-opus-4-6", max_tokens=300, system="Be brief.", messages=HELLO,
        stop_sequences=["END"], metadata={"user_id": "u-7"},
        extra_body={"temperature": 0.5, "top_p": 0.9, "top_k": 40})  # sampling, for models that still take it
    message = raw.parse()
    assert message.id == "msg_fake_json" and message.type == "message" and message.role == "assistant"
    assert [block.text for block in message.content] == ["".join(REPLY)]
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    assert (message.usage.input_tokens, message.usage.output_tokens, message.usage.cache_read_input_tokens,
            message.usage.cache_creation_input_tokens) == (12, 7, 4, 2)

    request = upstream_call(fake)
    # The version the SDK speaks goes along, as the client sent it.
    assert request["headers"]["anthropic-version"] == raw.http_response.request.headers["anthropic-version"]
    assert request["body"] == {"model": "claude-opus-4-6", "max_tokens": 300, "system": "Be brief.",
                               "messages": HELLO, "temperature": 0.5, "top_p": 0.9, "top_k": 40,
                               "stop_sequences": ["END"], "metadata": {"user_id": "u-7"}}
    # Cache reads and writes are prompt tokens for billing, as on chat.
    assert_event(usage_events, raw.headers["x-request-id"], JSON_PROMPT, USAGE["output_tokens"],
                 USAGE["cache_read_input_tokens"], False)


def test_async_create(gateway, anthropic_provider, tenant_key, fake, usage_events):
    async def go():
        async with anthropic.AsyncAnthropic(base_url=gateway, api_key=tenant_key[2], max_retries=0) as client:
            raw = await client.messages.with_raw_response.create(model="claude-opus-4-6", max_tokens=50,
                                                                 messages=HELLO)
            return raw.headers["x-request-id"], await raw.parse()

    request_id, message = asyncio.run(go())
    assert message.content[0].text == "".join(REPLY)
    assert_event(usage_events, request_id, JSON_PROMPT, USAGE["output_tokens"], 4, False)


def test_stream_with_thinking_keeps_the_signature(client, fake, usage_events):
    with client.messages.stream(model="claude-opus-4-6", max_tokens=4000, messages=HELLO,
                                thinking={"type": "adaptive"}) as stream:
        events = [event.type for event in stream]
        message = stream.get_final_message()
        request_id = stream.response.headers["x-request-id"]
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert {"content_block_start", "content_block_delta", "content_block_stop", "message_delta"} <= set(events)
    thinking, text = message.content
    assert (thinking.type, thinking.thinking, thinking.signature) == ("thinking", "".join(THOUGHT), "c2ln")
    assert text.text == "".join(REPLY)
    assert message.usage.output_tokens == STREAM_OUTPUT_TOKENS
    assert message.usage.input_tokens == STREAM_START_USAGE["input_tokens"]
    assert upstream_call(fake)["headers"]["accept"] == "text/event-stream"
    assert_event(usage_events, request_id, STREAM_PROMPT, STREAM_OUTPUT_TOKENS,
                 STREAM_START_USAGE["cache_read_input_tokens"], True)


def test_tools_json_and_stream(client, fake, usage_events):
    message = client.messages.create(model="claude-tool", max_tokens=200, messages=HELLO, tools=[WEATHER, TIME],
                                     tool_choice={"type": "auto"})
    assert message.stop_reason == "tool_use"
    calls = [(b.id, b.name, b.input) for b in message.content if b.type == "tool_use"]
    assert calls == [("toolu_01", "get_weather", {"location": "Paris"}), ("toolu_02", "get_time", {"tz": "CET"})]
    assert upstream_call(fake)["body"]["tools"] == [WEATHER, TIME]

    fake.requests.clear()
    with client.messages.stream(model="claude-tool", max_tokens=200, messages=HELLO, tools=[WEATHER, TIME]) as stream:
        final = stream.get_final_message()
    assert [(b.name, b.input) for b in final.content if b.type == "tool_use"] == [
        ("get_weather", {"location": "Paris"}), ("get_time", {"tz": "CET"})]
    assert final.stop_reason == "tool_use"

    # The tool's answer goes back, and reaches Anthropic as the client wrote it.
    fake.requests.clear()
    turns = [*HELLO, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]},
             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "18°C"},
                                          {"type": "tool_result", "tool_use_id": "toolu_02",
                                           "content": [{"type": "text", "text": "14:05"}]}]}]
    client.messages.create(model="claude-opus-4-6", max_tokens=200, messages=turns, tools=[WEATHER, TIME])
    assert upstream_call(fake)["body"]["messages"] == turns


def test_count_tokens_is_counted_by_anthropic_and_records_nothing(client, fake, usage_events):
    raw = client.messages.with_raw_response.count_tokens(model="claude-opus-4-6", messages=HELLO,
                                                         system="Be brief.", tools=[WEATHER])
    count = raw.parse()
    assert count.input_tokens == COUNTED_INPUT_TOKENS
    request = upstream_call(fake, "/v1/messages/count_tokens")
    assert request["body"] == {"model": "claude-opus-4-6", "messages": HELLO, "system": "Be brief.",
                               "tools": [WEATHER]}
    assert usage_events(raw.headers["x-request-id"], expect=1, timeout=0.3) == []


# -- Claude Code-shaped traffic: every field reaches Anthropic intact ---------------------------------------

BETAS = ["claude-code-20250219", "interleaved-thinking-2025-05-14", "fine-grained-tool-streaming-2025-05-14"]


def claude_code_body(model: str) -> dict:
    """Built from Anthropic's documented shapes: a cached system prompt in blocks, dozens of tools (the last
    one a cache breakpoint), and a conversation whose earlier assistant turns carry signed thinking."""
    tools = [{"name": f"tool_{i}", "description": f"Tool number {i}.",
              "input_schema": {"type": "object",
                               "properties": {"path": {"type": "string"}, "limit": {"type": "integer"}},
                               "required": ["path"], "additionalProperties": False,
                               "$schema": "http://json-schema.org/draft-07/schema#"}} for i in range(40)]
    tools[-1]["cache_control"] = {"type": "ephemeral"}
    return {
        "model": model,
        "max_tokens": 32000,
        "system": [{"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.",
                    "cache_control": {"type": "ephemeral"}},
                   {"type": "text", "text": "You are an interactive CLI tool that helps users with software "
                                            "engineering tasks." * 20,
                                            "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "<system-reminder>context</system-reminder>"},
                                         {"type": "text", "text": "Read setup.py",
                                          "cache_control": {"type": "ephemeral"}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "I should read the file.", "signature": "EqQBCkYIBxgCKkB0sig=="},
                {"type": "text", "text": "Reading it."},
                {"type": "tool_use", "id": "toolu_01A", "name": "tool_3", "input": {"path": "setup.py", "limit": 50}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A",
                 "content": [{"type": "text", "text": "from setuptools import setup"}], "is_error": False}]},
            {"role": "assistant", "content": [
                {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIw"},
                {"type": "thinking", "thinking": "Now answer.", "signature": "ErUBCkYIBxgCIkA2c2ln"},
                {"type": "text", "text": "It uses setuptools."}]},
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}},
                {"type": "text", "text": "And this?", "cache_control": {"type": "ephemeral"}}]},
        ],
        "tools": tools,
        "tool_choice": {"type": "auto"},
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "high"},
        "metadata": {"user_id": "user_0f1e_account_8d7c_session_6b5a"},
        "stream": True,
    }


@pytest.mark.parametrize("stream", [True, False])
def test_claude_code_request_reaches_anthropic_with_every_field_intact(gateway, anthropic_provider, tenant_key,
                                                                       fake, usage_events, stream):
    body = claude_code_body("anthropic/claude-opus-4-6")
    body["stream"] = stream
    headers = {"x-api-key": tenant_key[2], "anthropic-version": "2023-06-01", "anthropic-beta": ",".join(BETAS),
               "content-type": "application/json", "x-app": "cli", "user-agent": "claude-cli/2.0.0 (external, cli)"}
    response = httpx.post(f"{gateway}/v1/messages?beta=true", content=orjson.dumps(body), headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    request = upstream_call(fake)
    assert request["body"] == {**body, "model": "claude-opus-4-6"}
    assert request["headers"]["anthropic-beta"] == ",".join(BETAS)
    assert request["headers"]["anthropic-version"] == "2023-06-01"
    assert len(usage_events(response.headers["x-request-id"])) == 1


def test_beta_messages_stream_as_claude_code_sends_it(client, fake, usage_events):
    body = claude_code_body("claude-opus-4-6")
    body.pop("stream")
    with client.beta.messages.stream(**body, betas=BETAS) as stream:
        final = stream.get_final_message()
    assert final.content[-1].text == "".join(REPLY)
    request = upstream_call(fake)
    assert request["body"] == {**body, "stream": True}
    assert request["headers"]["anthropic-beta"] == ",".join(BETAS)


# -- recorded Anthropic traffic, relayed as it came ----------------------------------------------------------

def test_recorded_messages_are_relayed_byte_for_byte_and_parsed(client, fake, gateway, tenant_key, usage_events):
    for name in ("messages.json", "messages_with_tools.json"):
        raw = (RECORDED / name).read_bytes()
        fake.recorded["claude-opus-4-6"] = (b"application/json", raw)
        response = client.messages.with_raw_response.create(model="claude-opus-4-6", max_tokens=100,
                                                            messages=HELLO)
        assert response.http_response.content == raw
        message = response.parse()
        recorded = orjson.loads(raw)
        assert message.id == recorded["id"] and message.stop_reason == recorded["stop_reason"]
        assert [b.type for b in message.content] == [b["type"] for b in recorded["content"]]
        usage = recorded["usage"]
        cached = usage.get("cache_read_input_tokens", 0)
        prompt = usage["input_tokens"] + cached + usage.get("cache_creation_input_tokens", 0)
        assert_event(usage_events, response.headers["x-request-id"], prompt, usage["output_tokens"], cached, False)


def test_recorded_stream_is_relayed_and_parsed(client, fake, usage_events):
    raw = (RECORDED / "messages_stream.txt").read_bytes()
    fake.recorded["claude-opus-4-6"] = (b"text/event-stream", raw)
    with client.messages.stream(model="claude-opus-4-6", max_tokens=100, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        request_id = stream.response.headers["x-request-id"]
    assert text == "Hello World"
    assert final.id == "msg_01SJmPi7XXP8qscFQiHPR9oy"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (10, 5)
    assert_event(usage_events, request_id, 10, 5, 0, True)
