"""POST /v1/messages in front of providers that do not speak Anthropic: the official anthropic SDK against
an OpenAI-format fake (tests/fake_upstream.py) and a Gemini fake (tests/fake_gemini.py). The request is
translated to the target's format through its adapter and the answer back into Anthropic's Message and
stream events; usage is billed as the provider reported it."""

import asyncio

import anthropic
import pytest

from tests.fake_gemini import CACHED_TOKENS, CANDIDATE_TOKENS, PROMPT_TOKENS, THOUGHT_TOKENS, THOUGHTS
from tests.fake_gemini import REPLY as GEMINI_REPLY
from tests.fake_upstream import REASONING, REPLY

pytestmark = [pytest.mark.e2e]

HELLO = [{"role": "user", "content": "Hello"}]
WEATHER = {"name": "get_weather", "description": "Current weather for a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
GEMINI_KEY = "gm-upstream-secret"


@pytest.fixture
def client(gateway, provider, tenant_key):
    return anthropic.Anthropic(base_url=gateway, api_key=tenant_key[2], max_retries=0)


def assert_event(usage_events, request_id, provider, prompt, completion, cached, stream):
    [event] = usage_events(request_id)
    assert (event["endpoint"], event["provider"], event["status"], event["stream"]) == (
        "/v1/messages", provider, 200, stream)
    assert (event["prompt_tokens"], event["completion_tokens"], event["cached_tokens"]) == (prompt, completion, cached)
    assert event["usage_source"] == "reported"


# -- an OpenAI-format target ---------------------------------------------------------------------------------

def test_openai_target_json(client, upstream, usage_events):
    raw = client.messages.with_raw_response.create(
        model="gpt-4o-mini", max_tokens=100, system=[{"type": "text", "text": "Be brief.",
                                                      "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "Hello"},
                                               {"type": "image", "source": {"type": "url",
                                                                            "url": "https://example.com/a.png"}}]}],
        stop_sequences=["END"], metadata={"user_id": "u-9"}, extra_body={"temperature": 0.2})
    message = raw.parse()
    assert message.id.startswith("msg_") and message.type == "message" and message.role == "assistant"
    assert [(b.type, b.text) for b in message.content] == [("text", "".join(REPLY))]
    assert message.stop_reason == "end_turn"
    # The fake reports 11 prompt tokens, 2 of them cached: Anthropic's input_tokens leaves cache reads out.
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens, message.usage.output_tokens) == (
        9, 2, len(REPLY))
    [request] = upstream.chat_requests()
    assert request["headers"]["authorization"] == "Bearer sk-upstream-secret"
    assert request["body"] == {
        "model": "gpt-4o-mini", "max_tokens": 100, "stop": ["END"], "temperature": 0.2, "user": "u-9",
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": [{"type": "text", "text": "Hello"},
                                                  {"type": "image_url",
                                                   "image_url": {"url": "https://example.com/a.png"}}]}]}
    assert_event(usage_events, raw.headers["x-request-id"], "openai", 11, len(REPLY), 2, False)


def test_openai_target_async_and_stream(gateway, provider, tenant_key, upstream, usage_events):
    async def go():
        async with anthropic.AsyncAnthropic(base_url=gateway, api_key=tenant_key[2], max_retries=0) as client:
            message = await client.messages.create(model="gpt-4o-mini", max_tokens=50, messages=HELLO)
            async with client.messages.stream(model="gpt-4o-mini", max_tokens=50, messages=HELLO) as stream:
                text = "".join([piece async for piece in stream.text_stream])
                final = await stream.get_final_message()
                return message, text, final, stream.response.headers["x-request-id"]

    message, text, final, request_id = asyncio.run(go())
    assert message.content[0].text == "".join(REPLY)
    assert text == "".join(REPLY)
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (11, len(REPLY))
    stream_request = upstream.chat_requests()[-1]
    assert stream_request["body"]["stream"] is True
    assert stream_request["body"]["stream_options"] == {"include_usage": True}
    assert_event(usage_events, request_id, "openai", 11, len(REPLY), 0, True)


def test_openai_target_tools_round_trip(client, upstream, usage_events):
    message = client.messages.create(model="tool-model", max_tokens=100, messages=HELLO, tools=[WEATHER],
                                     tool_choice={"type": "any", "disable_parallel_tool_use": True})
    [call] = message.content
    assert (call.type, call.id, call.name, call.input) == ("tool_use", "call_1", "get_weather", {"city": "Paris"})
    assert message.stop_reason == "tool_use"
    body = upstream.chat_requests()[0]["body"]
    assert body["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": WEATHER["description"], "parameters": WEATHER["input_schema"]}}]
    assert (body["tool_choice"], body["parallel_tool_calls"]) == ("required", False)

    with client.messages.stream(model="tool-model", max_tokens=100, messages=HELLO, tools=[WEATHER]) as stream:
        final = stream.get_final_message()
    assert [(b.type, b.name, b.input) for b in final.content] == [("tool_use", "get_weather", {"city": "Paris"})]
    assert final.stop_reason == "tool_use"

    upstream.requests.clear()
    client.messages.create(model="gpt-4o-mini", max_tokens=100, tools=[WEATHER], messages=[
        *HELLO,
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Weather tool.", "signature": "c2ln"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "18°C"},
                                     {"type": "text", "text": "And tomorrow?"}]}])
    assert upstream.chat_requests()[0]["body"]["messages"] == [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18°C"},
        {"role": "user", "content": "And tomorrow?"}]


def test_openai_target_thinking(client, upstream):
    """The thinking budget becomes a reasoning effort; the provider's reasoning comes back as thinking blocks."""
    thinking = {"type": "enabled", "budget_tokens": 2048}
    message = client.messages.create(model="think-model", max_tokens=3000, messages=HELLO, thinking=thinking)
    assert upstream.chat_requests()[0]["body"]["reasoning_effort"] == "low"
    assert [(b.type, getattr(b, "thinking", None) or getattr(b, "text", None)) for b in message.content] == [
        ("thinking", "".join(REASONING)), ("text", "".join(REPLY))]
    with client.messages.stream(model="think-model", max_tokens=3000, messages=HELLO, thinking=thinking) as stream:
        deltas = [event.delta.type for event in stream if event.type == "content_block_delta"]
        final = stream.get_final_message()
    assert deltas == ["thinking_delta"] * len(REASONING) + ["text_delta"] * len(REPLY)
    assert [(b.type, getattr(b, "thinking", None) or getattr(b, "text", None)) for b in final.content] == [
        ("thinking", "".join(REASONING)), ("text", "".join(REPLY))]


def test_openai_target_count_tokens_is_estimated_without_an_upstream_call(client, upstream, usage_events):
    raw = client.messages.with_raw_response.count_tokens(model="gpt-4o-mini", messages=HELLO)
    short = raw.parse()
    long = client.messages.count_tokens(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello " * 100}],
                                        tools=[WEATHER], system="Be brief.")
    assert 0 < short.input_tokens < long.input_tokens
    assert long.input_tokens > 100
    assert upstream.chat_requests() == []
    assert usage_events(raw.headers["x-request-id"], expect=1, timeout=0.3) == []


# -- a Gemini target -----------------------------------------------------------------------------------------

@pytest.fixture
def gemini(gemini_server, make_provider):
    gemini_server.requests.clear()
    make_provider(name="gemini", provider_type="gemini", base_url=gemini_server.base_url, api_key=GEMINI_KEY)
    return gemini_server


@pytest.fixture
def gemini_client(gateway, gemini, tenant_key):
    return anthropic.Anthropic(base_url=gateway, api_key=tenant_key[2], max_retries=0)


def test_gemini_target_json_with_thinking(gemini_client, gemini, usage_events):
    raw = gemini_client.messages.with_raw_response.create(
        model="gemini-2.5-flash", max_tokens=4000, system="Be brief.", messages=HELLO,
        thinking={"type": "enabled", "budget_tokens": 8000})
    message = raw.parse()
    thinking, text = message.content
    assert (thinking.type, thinking.thinking) == ("thinking", "".join(THOUGHTS))
    assert (text.type, text.text) == ("text", "".join(GEMINI_REPLY))
    assert message.usage.cache_read_input_tokens == CACHED_TOKENS
    assert message.usage.input_tokens == PROMPT_TOKENS - CACHED_TOKENS
    [request] = gemini.generate_requests()
    assert request["path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert request["body"]["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert request["body"]["generationConfig"]["thinkingConfig"]["includeThoughts"] is True
    [event] = usage_events(raw.headers["x-request-id"])
    assert (event["provider"], event["endpoint"], event["prompt_tokens"], event["cached_tokens"]) == (
        "gemini", "/v1/messages", PROMPT_TOKENS, CACHED_TOKENS)
    assert event["completion_tokens"] == message.usage.output_tokens >= CANDIDATE_TOKENS
    assert event["reasoning_tokens"] == THOUGHT_TOKENS


def test_gemini_target_stream_with_thinking(gemini_client, gemini, usage_events):
    with gemini_client.messages.stream(model="gemini-2.5-flash", max_tokens=4000, messages=HELLO,
                                       thinking={"type": "enabled", "budget_tokens": 8000}) as stream:
        types = [event.type for event in stream]
        final = stream.get_final_message()
        request_id = stream.response.headers["x-request-id"]
    assert types[0] == "message_start" and types[-2:] == ["message_delta", "message_stop"]
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == "".join(THOUGHTS)
    assert final.content[1].text == "".join(GEMINI_REPLY)
    assert final.stop_reason == "end_turn"
    [event] = usage_events(request_id)
    assert (event["provider"], event["stream"], event["prompt_tokens"], event["usage_source"]) == (
        "gemini", True, PROMPT_TOKENS, "reported")


def test_gemini_target_tools_and_count_tokens(gemini_client, gemini, usage_events):
    message = gemini_client.messages.create(model="gemini-tool", max_tokens=100, messages=HELLO, tools=[WEATHER])
    [call] = message.content
    assert (call.type, call.name, call.input) == ("tool_use", "get_weather", {"city": "Paris"})
    assert message.stop_reason == "tool_use"
    [request] = gemini.generate_requests()
    assert request["body"]["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"

    with gemini_client.messages.stream(model="gemini-tool", max_tokens=100, messages=HELLO, tools=[WEATHER]) as stream:
        final = stream.get_final_message()
    assert [(b.type, b.name, b.input) for b in final.content] == [("tool_use", "get_weather", {"city": "Paris"})]

    gemini.requests.clear()
    count = gemini_client.messages.count_tokens(model="gemini-2.5-flash", messages=HELLO)
    assert count.input_tokens > 0
    assert gemini.generate_requests() == []


# -- routing as chat: failover from Anthropic to an OpenAI-format target ------------------------------------

@pytest.mark.parametrize("alias", [True, False])
def test_fails_over_from_anthropic_to_openai(gateway, provider, upstream, make_provider, tenant_key, usage_events,
                                             settings, alias):
    from providers.models import ModelAlias
    from tests.fake_anthropic import FakeAnthropic

    fake = FakeAnthropic().start()
    try:
        make_provider(name="anthropic", provider_type="anthropic", base_url=fake.base_url, api_key="sk-ant-upstream")
        if alias:  # a virtual model whose first pick fails
            ModelAlias.objects.create(name="coder", targets=[{"target": "anthropic/claude-overloaded", "weight": 1000},
                                                             {"target": "openai/gpt-4o-mini", "weight": 1}])
            model = "coder"
        else:  # a failover rule
            settings.FAILOVER_RULES_JSON = '{"anthropic/claude-overloaded": ["openai/gpt-4o-mini"]}'
            model = "anthropic/claude-overloaded"
        client = anthropic.Anthropic(base_url=gateway, api_key=tenant_key[2], max_retries=0)
        for stream in (False, True):
            fake.requests.clear()
            upstream.requests.clear()
            if stream:
                with client.messages.stream(model=model, max_tokens=50, messages=HELLO) as events:
                    message = events.get_final_message()
                    request_id = events.response.headers["x-request-id"]
            else:
                raw = client.messages.with_raw_response.create(model=model, max_tokens=50, messages=HELLO)
                message, request_id = raw.parse(), raw.headers["x-request-id"]
            assert message.content[0].text == "".join(REPLY)
            # Anthropic heard the Messages body; the backup heard chat completions.
            assert [r["body"]["model"] for r in fake.message_requests()][:1] == ["claude-overloaded"]
            assert upstream.chat_requests()[0]["body"]["messages"] == HELLO
            [event] = usage_events(request_id)
            assert (event["provider"], event["requested_model"], event["status"]) == ("openai", model, 200)
            assert [(a["provider"], a["status"]) for a in event["attempts"]][-1] == ("openai", 200)
            assert event["attempts"][0]["provider"] == "anthropic"
    finally:
        fake.stop()


def test_gemini_target_async_create_and_stream(gateway, gemini, tenant_key, usage_events):
    async def go():
        async with anthropic.AsyncAnthropic(base_url=gateway, api_key=tenant_key[2], max_retries=0) as client:
            message = await client.messages.create(model="gemini-2.5-flash", max_tokens=50, messages=HELLO)
            async with client.messages.stream(model="gemini/gemini-2.5-flash", max_tokens=50,
                                              messages=HELLO) as stream:
                text = "".join([piece async for piece in stream.text_stream])
                return message, text, stream.response.headers["x-request-id"]

    message, text, request_id = asyncio.run(go())
    assert message.content[0].text == text == "".join(GEMINI_REPLY)
    [event] = usage_events(request_id)
    assert (event["provider"], event["model"], event["stream"], event["prompt_tokens"]) == (
        "gemini", "gemini-2.5-flash", True, PROMPT_TOKENS)


# -- mid-conversation system messages (Claude Code 2.1's <system-reminder> turns) ----------------------------

REMINDER = "<system-reminder>The user opened a.txt.</system-reminder>"
WITH_SYSTEM = [{"role": "user", "content": "Hello"},
               {"role": "system", "content": [{"type": "text", "text": REMINDER,
                                               "cache_control": {"type": "ephemeral"}}]}]


def test_openai_target_keeps_a_mid_conversation_system_message_in_place(client, upstream, usage_events):
    raw = client.messages.with_raw_response.create(model="gpt-4o-mini", max_tokens=50, system="Top.",
                                                   messages=WITH_SYSTEM)
    assert raw.parse().content[0].text == "".join(REPLY)
    assert upstream.chat_requests()[0]["body"]["messages"] == [
        {"role": "system", "content": "Top."}, {"role": "user", "content": "Hello"},
        {"role": "system", "content": REMINDER}]
    assert_event(usage_events, raw.headers["x-request-id"], "openai", 11, len(REPLY), 2, False)
    with client.messages.stream(model="gpt-4o-mini", max_tokens=50, messages=WITH_SYSTEM) as stream:
        assert stream.get_final_message().content[0].text == "".join(REPLY)
    # count_tokens counts the system message too
    without = client.messages.count_tokens(model="gpt-4o-mini", messages=HELLO).input_tokens
    assert client.messages.count_tokens(model="gpt-4o-mini", messages=WITH_SYSTEM).input_tokens > without + 5


def test_a_misplaced_system_message_is_anthropics_400_before_any_upstream_call(gateway, provider, tenant_key,
                                                                               upstream, usage_events):
    import httpx

    for path, extra in (("/v1/messages", {"max_tokens": 50}), ("/v1/messages/count_tokens", {})):
        response = httpx.post(gateway + path, headers={"x-api-key": tenant_key[2]}, json={
            "model": "gpt-4o-mini", "messages": [WITH_SYSTEM[1], *HELLO], **extra})
        assert response.status_code == 400
        body = response.json()
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
        assert "cannot be the first message" in body["error"]["message"]
    assert upstream.chat_requests() == []
    assert usage_events(None, expect=1, timeout=0.3) == []


def test_gemini_target_marks_a_mid_conversation_system_message_in_place(gemini_client, gemini, usage_events):
    from providers.gemini.request import MID_CONVERSATION_SYSTEM

    messages = [*WITH_SYSTEM, {"role": "assistant", "content": "Hi"}, {"role": "user", "content": "Bye"}]
    raw = gemini_client.messages.with_raw_response.create(model="gemini-2.5-flash", max_tokens=50, system="Top.",
                                                          messages=messages)
    assert raw.parse().content[0].text == "".join(GEMINI_REPLY)
    [request] = gemini.generate_requests()
    assert request["headers"]["x-goog-api-key"] == GEMINI_KEY
    assert request["body"]["systemInstruction"] == {"parts": [{"text": "Top."}]}
    assert request["body"]["contents"] == [
        {"role": "user", "parts": [{"text": "Hello"}, {"text": MID_CONVERSATION_SYSTEM % REMINDER}]},
        {"role": "model", "parts": [{"text": "Hi"}]},
        {"role": "user", "parts": [{"text": "Bye"}]}]
    [event] = usage_events(raw.headers["x-request-id"])
    assert (event["provider"], event["endpoint"], event["status"]) == ("gemini", "/v1/messages", 200)
    count = gemini_client.messages.count_tokens(model="gemini-2.5-flash", messages=WITH_SYSTEM)
    assert count.input_tokens > gemini_client.messages.count_tokens(model="gemini-2.5-flash",
                                                                    messages=HELLO).input_tokens
