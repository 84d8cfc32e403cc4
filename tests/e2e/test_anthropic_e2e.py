"""The gateway driven by the official openai SDK against a fake Anthropic Messages API: the client
speaks OpenAI chat completions, the upstream hears Anthropic, and usage is billed as Anthropic counted it."""

import time

import httpx
import openai
import orjson
import pytest

from tests.fake_anthropic import (
    MODELS,
    REPLY,
    STREAM_OUTPUT_TOKENS,
    STREAM_START_USAGE,
    THOUGHT,
    USAGE,
)

pytestmark = [pytest.mark.e2e]

HELLO = [{"role": "user", "content": "Hello"}]
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather for a place",
                                      "parameters": {"type": "object",
                                                     "properties": {"location": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
]
# What the fake bills, in OpenAI's meaning: every prompt token, cached ones included.
JSON_PROMPT = USAGE["input_tokens"] + USAGE["cache_read_input_tokens"] + USAGE["cache_creation_input_tokens"]
STREAM_PROMPT = (STREAM_START_USAGE["input_tokens"] + STREAM_START_USAGE["cache_read_input_tokens"]
                 + STREAM_START_USAGE["cache_creation_input_tokens"])


@pytest.fixture
def fake(anthropic_server):
    anthropic_server.requests.clear()
    return anthropic_server


@pytest.fixture
def anthropic_provider(make_provider, fake):
    return make_provider(name="anthropic", provider_type="anthropic", base_url=fake.base_url,
                         api_key="sk-ant-upstream")


@pytest.fixture
def client(gateway, anthropic_provider, tenant_key):
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key=tenant_key[2], max_retries=0)


def sent_message(fake) -> dict:
    [request] = fake.message_requests()
    assert request["method"] == "POST" and request["path"] == "/v1/messages"
    headers = request["headers"]
    assert headers["x-api-key"] == "sk-ant-upstream"
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["content-type"] == "application/json"
    assert "authorization" not in headers  # neither the tenant's key nor a bearer upstream key leaks
    return request


def assert_event(usage_events, request_id, prompt, completion, cached, stream, status=200, source="reported"):
    [event] = usage_events(request_id)
    assert (event["provider"], event["provider_type"], event["status"], event["stream"]) == (
        "anthropic", "anthropic", status, stream)
    assert (event["prompt_tokens"], event["completion_tokens"], event["cached_tokens"]) == (prompt, completion,
                                                                                             cached)
    assert event["total_tokens"] == prompt + completion
    assert event["usage_source"] == source
    return event


def collect(stream):
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return chunks, text


def test_json_completion_is_translated_both_ways(client, fake, usage_events):
    raw = client.chat.completions.with_raw_response.create(
        model="claude-sonnet-4-20250514", max_tokens=300, temperature=0.5, top_p=0.9, stop="END", user="user-7",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "developer", "content": "Answer in English."},
                  *HELLO])
    completion = raw.parse()
    choice = completion.choices[0]
    assert choice.message.content == "".join(REPLY)
    assert choice.message.role == "assistant"
    assert choice.finish_reason == "stop"
    assert completion.id == "msg_fake_json"
    assert completion.object == "chat.completion"
    assert completion.model == "claude-sonnet-4-20250514"
    assert completion.provider == "anthropic"
    assert completion.usage.prompt_tokens == JSON_PROMPT == 18
    assert completion.usage.completion_tokens == USAGE["output_tokens"]
    assert completion.usage.total_tokens == JSON_PROMPT + USAGE["output_tokens"]
    assert completion.usage.prompt_tokens_details.cached_tokens == USAGE["cache_read_input_tokens"]
    assert completion.usage.raw_usage == USAGE

    request = sent_message(fake)
    assert request["headers"]["accept"] == "application/json"
    assert request["body"] == {
        "model": "claude-sonnet-4-20250514",
        "system": "Be brief.\n\nAnswer in English.",
        "messages": [{"role": "user", "content": "Hello"}],
        "max_tokens": 300,
        "stop_sequences": ["END"],
        "temperature": 0.5,
        "top_p": 0.9,
        "metadata": {"user_id": "user-7"},
    }
    assert_event(usage_events, raw.headers["x-request-id"], JSON_PROMPT, USAGE["output_tokens"],
                 USAGE["cache_read_input_tokens"], stream=False)


def test_json_tool_calls_and_tool_results(client, fake, usage_events):
    completion = client.chat.completions.create(
        model="claude-tool", tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_weather"}},
        messages=[
            {"role": "user", "content": "Weather and time in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "toolu_a", "type": "function", "function": {"name": "get_weather",
                                                                   "arguments": '{"location": "Paris"}'}},
                {"id": "toolu_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "toolu_a", "content": "18C, cloudy"},
            {"role": "tool", "tool_call_id": "toolu_b", "content": "14:00"},
        ])
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    calls = [(c.id, c.type, c.function.name, c.function.arguments) for c in choice.message.tool_calls]
    assert calls == [("toolu_01", "function", "get_weather", '{"location":"Paris"}'),
                     ("toolu_02", "function", "get_time", '{"tz":"CET"}')]

    body = sent_message(fake)["body"]
    assert body["tools"] == [
        {"name": "get_weather", "description": "Weather for a place",
         "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}}},
        {"name": "get_time", "input_schema": {"type": "object"}},
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "get_weather"}
    assert body["messages"] == [
        {"role": "user", "content": "Weather and time in Paris?"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"location": "Paris"}},
            {"type": "tool_use", "id": "toolu_b", "name": "get_time", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_a", "content": "18C, cloudy"},
            {"type": "tool_result", "tool_use_id": "toolu_b", "content": "14:00"}]},
    ]
    assert body["max_tokens"] == 4096
    assert len(usage_events()) == 1


def test_stream_text_without_usage_for_the_client(gateway, anthropic_provider, tenant_key, fake, usage_events):
    with httpx.stream("POST", f"{gateway}/v1/chat/completions",
                      headers={"Authorization": f"Bearer {tenant_key[2]}"},
                      json={"model": "claude-sonnet-4-20250514", "stream": True, "messages": HELLO}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
        request_id = response.headers["x-request-id"]
    assert lines.count("data: [DONE]") == 1 and lines[-1] == "data: [DONE]"
    assert not any('"usage"' in line for line in lines)
    chunks = [orjson.loads(line[len("data: "):]) for line in lines[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "".join(REPLY)
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == "stop"
    assert {c["id"] for c in chunks} == {"msg_fake_stream"}
    assert len({c["created"] for c in chunks}) == 1
    assert {c["model"] for c in chunks} == {"claude-sonnet-4-20250514"}
    assert {c["provider"] for c in chunks} == {"anthropic"}

    request = sent_message(fake)
    assert request["headers"]["accept"] == "text/event-stream"
    assert request["body"]["stream"] is True
    assert "stream_options" not in request["body"]
    # The client did not ask for usage; the tenant is billed what Anthropic reported all the same.
    assert_event(usage_events, request_id, STREAM_PROMPT, STREAM_OUTPUT_TOKENS,
                 STREAM_START_USAGE["cache_read_input_tokens"], stream=True)


def test_stream_through_sdk_with_include_usage(client, fake, usage_events):
    raw = client.chat.completions.with_raw_response.create(
        model="claude-sonnet-4-20250514", messages=HELLO, stream=True, stream_options={"include_usage": True})
    chunks, text = collect(raw.parse())
    assert text == "".join(REPLY)
    last = chunks[-1]
    assert last.choices == []
    assert last.usage.prompt_tokens == STREAM_PROMPT == 30
    assert last.usage.completion_tokens == STREAM_OUTPUT_TOKENS
    assert last.usage.total_tokens == STREAM_PROMPT + STREAM_OUTPUT_TOKENS
    assert last.usage.prompt_tokens_details.cached_tokens == STREAM_START_USAGE["cache_read_input_tokens"]
    assert last.usage.raw_usage == {**STREAM_START_USAGE, "output_tokens": STREAM_OUTPUT_TOKENS}
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert "stream_options" not in sent_message(fake)["body"]
    assert_event(usage_events, raw.headers["x-request-id"], STREAM_PROMPT, STREAM_OUTPUT_TOKENS,
                 STREAM_START_USAGE["cache_read_input_tokens"], stream=True)


def test_stream_tool_call_deltas(client, fake, usage_events):
    stream = client.chat.completions.create(
        model="claude-tool", stream=True, tools=TOOLS, tool_choice="required", parallel_tool_calls=False,
        messages=[{"role": "user", "content": "Weather and time in Paris?"}])
    calls = {}
    finish = None
    text = ""
    for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            text += choice.delta.content or ""
            for call in choice.delta.tool_calls or ():
                entry = calls.setdefault(call.index, {"id": None, "type": None, "name": "", "arguments": ""})
                entry["id"] = call.id or entry["id"]
                entry["type"] = call.type or entry["type"]
                if call.function and call.function.name:
                    entry["name"] += call.function.name
                if call.function and call.function.arguments:
                    entry["arguments"] += call.function.arguments
    # Tool call indexes count tool calls (0, 1), not Anthropic's content blocks (1, 2).
    assert calls == {
        0: {"id": "toolu_01", "type": "function", "name": "get_weather", "arguments": '{"location": "Paris"}'},
        1: {"id": "toolu_02", "type": "function", "name": "get_time", "arguments": '{"tz": "CET"}'},
    }
    assert text == "Let me check."
    assert finish == "tool_calls"
    body = sent_message(fake)["body"]
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert [t["name"] for t in body["tools"]] == ["get_weather", "get_time"]
    assert len(usage_events()) == 1


def test_reasoning_effort_on_an_adaptive_model(client, fake, usage_events):
    raw = client.chat.completions.with_raw_response.create(
        model="claude-opus-4-6", messages=HELLO, reasoning_effort="medium", temperature=0.3)
    completion = raw.parse()
    message = completion.choices[0].message
    assert message.content == "".join(REPLY)
    assert message.reasoning_content == "".join(THOUGHT)
    body = sent_message(fake)["body"]
    assert body["thinking"] == {"type": "adaptive"}
    assert body["output_config"] == {"effort": "medium"}
    assert body["max_tokens"] == 4096
    assert "temperature" not in body
    assert_event(usage_events, raw.headers["x-request-id"], JSON_PROMPT, USAGE["output_tokens"],
                 USAGE["cache_read_input_tokens"], stream=False)


def test_reasoning_effort_on_an_older_model_streams_thinking(client, fake, usage_events):
    stream = client.chat.completions.create(
        model="claude-3-7-sonnet-20250219", messages=HELLO, stream=True, max_tokens=1000, temperature=0.2,
        extra_body={"reasoning": {"effort": "low"}})
    chunks = list(stream)
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
                        for c in chunks if c.choices)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert reasoning == "".join(THOUGHT)
    assert text == "".join(REPLY)
    body = sent_message(fake)["body"]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 5000}
    assert body["max_tokens"] == 6000
    assert "temperature" not in body and "output_config" not in body and "reasoning" not in body
    assert len(usage_events()) == 1


def test_mid_stream_error_raises_in_the_sdk_and_sends_no_done(client, gateway, tenant_key, fake, usage_events):
    stream = client.chat.completions.create(model="claude-error-stream", messages=HELLO, stream=True)
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            received.append(chunk)
    assert "Overloaded" in info.value.message
    assert "".join(c.choices[0].delta.content or "" for c in received if c.choices) == "".join(REPLY[:2])
    [event] = usage_events()
    assert (event["status"], event["error_type"], event["stream"]) == (502, "provider_error", True)
    fake.requests.clear()

    with httpx.stream("POST", f"{gateway}/v1/chat/completions",
                      headers={"Authorization": f"Bearer {tenant_key[2]}"},
                      json={"model": "claude-error-stream", "stream": True, "messages": HELLO}) as response:
        lines = [line for line in response.iter_lines() if line]
    assert "data: [DONE]" not in lines
    error = orjson.loads(lines[-1][len("data: "):])["error"]
    assert error["type"] == "provider_error"
    assert error["code"] == "overloaded_error"
    assert "Overloaded" in error["message"]


def test_audio_input_is_a_400_before_any_upstream_call(client, fake, usage_events):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="claude-sonnet-4-20250514", messages=[{"role": "user", "content": [
            {"type": "text", "text": "Transcribe"},
            {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}]}])
    error = info.value.body
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "messages[0].content"
    assert fake.message_requests() == []


def test_images_reach_anthropic_as_image_blocks(client, fake):
    client.chat.completions.create(model="claude-sonnet-4-20250514", messages=[{"role": "user", "content": [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}}]}])
    assert sent_message(fake)["body"]["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "Compare"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}]}]


def test_upstream_error_bodies_keep_anthropic_message(client, fake):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="claude-fail-400", messages=HELLO)
    assert info.value.body["message"] == "messages: text content blocks must be non-empty"
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="claude-overloaded", messages=HELLO)
    assert info.value.status_code == 502
    assert "Overloaded" in info.value.body["message"]


def test_models_are_listed_from_anthropic(client, fake):
    # The registry fetches model lists in the background: poll until the fake's listing is fetched and shown.
    deadline = time.monotonic() + 5
    ids, listing = set(), []
    while time.monotonic() < deadline:
        ids = {m.id for m in client.models.list()}
        listing = [r for r in fake.requests if r["path"] == "/v1/models"]
        if listing and "anthropic/claude-opus-4-6" in ids:
            break
        time.sleep(0.05)
    assert {f"anthropic/{m}" for m in MODELS} <= ids
    assert listing and listing[0]["method"] == "GET" and listing[0]["query"] == b"limit=1000"
    assert listing[0]["headers"]["x-api-key"] == "sk-ant-upstream"
    assert listing[0]["headers"]["anthropic-version"] == "2023-06-01"


def test_embeddings_are_refused_with_a_400_and_nothing_forwarded_or_recorded(client, fake, usage_events):
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="anthropic/claude-sonnet-4-5", input="hello")
    assert caught.value.body["type"] == "invalid_request_error"
    assert caught.value.body["code"] == "embeddings_not_supported" and caught.value.body["param"] == "model"
    assert [r for r in fake.requests if r["method"] == "POST"] == []
    assert usage_events(expect=0) == []
