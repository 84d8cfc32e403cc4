"""POST /v1/responses in front of providers that speak neither the Responses nor the chat API: an
Anthropic target (tests/fake_anthropic.py) and a Gemini target (tests/fake_gemini.py), driven by the
official openai SDK. The request goes Responses -> chat -> the provider's adapter, and back."""

import openai
import pytest

from tests import fake_anthropic, fake_gemini

pytestmark = [pytest.mark.e2e]

WEATHER_TOOL = {"type": "function", "name": "get_weather", "description": "Weather for a place",
                "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}
TIME_TOOL = {"type": "function", "name": "get_time", "parameters": {"type": "object"}}


@pytest.fixture
def anthropic_fake(anthropic_server, make_provider):
    anthropic_server.requests.clear()
    make_provider(name="anthropic", provider_type="anthropic", base_url=anthropic_server.base_url,
                  api_key="sk-ant-upstream")
    return anthropic_server


@pytest.fixture
def gemini_fake(gemini_server, make_provider):
    gemini_server.requests.clear()
    make_provider(name="gemini", provider_type="gemini", base_url=gemini_server.base_url,
                  api_key="gm-upstream-secret")
    return gemini_server


@pytest.fixture
def client(gateway, tenant_key):
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key=tenant_key[2], max_retries=0)


# -- Anthropic -------------------------------------------------------------------------------------------


def test_anthropic_create_with_reasoning(client, anthropic_fake, usage_events):
    raw = client.responses.with_raw_response.create(
        model="claude-sonnet-4-20250514", input="Hello", instructions="Be warm.", max_output_tokens=1024,
        reasoning={"effort": "low"})
    response = raw.parse()
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.output[0].content[0].text == "".join(fake_anthropic.THOUGHT)
    assert response.output_text == "".join(fake_anthropic.REPLY)
    assert response.provider == "anthropic" and response.status == "completed"
    usage = fake_anthropic.USAGE
    prompt = usage["input_tokens"] + usage["cache_read_input_tokens"] + usage["cache_creation_input_tokens"]
    assert (response.usage.input_tokens, response.usage.output_tokens) == (prompt, usage["output_tokens"])
    assert response.usage.input_tokens_details.cached_tokens == usage["cache_read_input_tokens"]
    [sent] = anthropic_fake.message_requests()
    body = sent["body"]
    assert body["system"] in ("Be warm.", [{"type": "text", "text": "Be warm."}])
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]
    assert body["thinking"]["type"] in ("enabled", "adaptive")
    [event] = usage_events(raw.headers["x-request-id"])
    assert (event["endpoint"], event["provider"], event["prompt_tokens"], event["cached_tokens"]) == (
        "/v1/responses", "anthropic", prompt, usage["cache_read_input_tokens"])


def test_anthropic_stream_with_parallel_tool_calls(client, anthropic_fake, usage_events):
    with client.responses.stream(model="claude-tool", input="Weather and time in Paris?",
                                 tools=[WEATHER_TOOL, TIME_TOOL]) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert [item.type for item in final.output] == ["message", "function_call", "function_call"]
    assert final.output_text == "Let me check."
    calls = final.output[1:]
    assert [(c.call_id, c.name, c.arguments) for c in calls] == [
        (call_id, name, "".join(parts)) for call_id, name, parts in fake_anthropic.TOOL_CALLS]
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert "".join(deltas) == "".join("".join(parts) for _, _, parts in fake_anthropic.TOOL_CALLS)
    [event] = usage_events(None)
    assert (event["stream"], event["completion_tokens"], event["usage_source"]) == (
        True, fake_anthropic.STREAM_OUTPUT_TOKENS, "reported")


def test_anthropic_function_call_round_trip(client, anthropic_fake):
    first = client.responses.create(model="claude-tool", input="Weather and time?", tools=[WEATHER_TOOL, TIME_TOOL])
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 2
    second = client.responses.create(
        model="claude-tool", previous_response_id=first.id, tools=[WEATHER_TOOL, TIME_TOOL],
        input=[{"type": "function_call_output", "call_id": c.call_id, "output": "sunny"} for c in calls])
    assert second.previous_response_id == first.id
    body = anthropic_fake.message_requests()[1]["body"]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assistant = body["messages"][1]["content"]
    assert assistant[0] == {"type": "text", "text": "Let me check."}
    assert [(b["type"], b["id"]) for b in assistant[1:]] == [("tool_use", "toolu_01"), ("tool_use", "toolu_02")]
    results = body["messages"][2]["content"]
    assert [(b["type"], b["tool_use_id"]) for b in results] == [("tool_result", "toolu_01"),
                                                                ("tool_result", "toolu_02")]


def test_anthropic_error_mid_stream_ends_in_response_failed(client, anthropic_fake, usage_events):
    with client.responses.stream(model="claude-error-stream", input="Hello") as stream:
        events = list(stream)
    assert events[-1].type == "response.failed"
    assert events[-1].response.status == "failed" and events[-1].response.error.message
    assert "response.completed" not in [e.type for e in events]
    [event] = usage_events(None)
    assert (event["endpoint"], event["status"], event["error_type"]) == ("/v1/responses", 502, "provider_error")
    assert event["prompt_tokens"] > 0 and event["completion_tokens"] > 0  # what was generated is billed


# -- Gemini ----------------------------------------------------------------------------------------------


def test_gemini_create_and_stream(client, gemini_fake, usage_events):
    response = client.responses.create(model="gemini-2.5-flash", input="Hello")
    assert response.output_text == "".join(fake_gemini.REPLY) and response.provider == "gemini"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (fake_gemini.PROMPT_TOKENS,
                                                                           fake_gemini.CANDIDATE_TOKENS)
    assert response.usage.input_tokens_details.cached_tokens == fake_gemini.CACHED_TOKENS
    with client.responses.stream(model="gemini-2.5-flash", input="Hello") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "".join(fake_gemini.REPLY)
    assert final.usage.output_tokens == fake_gemini.CANDIDATE_TOKENS
    paths = [r["path"] for r in gemini_fake.generate_requests()]
    assert paths == ["/v1beta/models/gemini-2.5-flash:generateContent",
                     "/v1beta/models/gemini-2.5-flash:streamGenerateContent"]
    assert [e["endpoint"] for e in usage_events(None, expect=2)] == ["/v1/responses"] * 2


def test_gemini_function_call_round_trip_keeps_the_thought_signature(client, gemini_fake):
    first = client.responses.create(model="gemini-tool", input="Weather in Paris?", tools=[WEATHER_TOOL])
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and call.arguments == '{"city":"Paris"}'
    client.responses.create(model="gemini-tool", previous_response_id=first.id, tools=[WEATHER_TOOL],
                            input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}])
    contents = gemini_fake.generate_requests()[1]["body"]["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    [part] = contents[1]["parts"]
    assert part["functionCall"] == {"name": "get_weather", "args": {"city": "Paris"}}
    assert part["thoughtSignature"] == fake_gemini.SIGNATURE
    assert contents[2]["parts"][0]["functionResponse"]["name"] == "get_weather"


def test_gemini_broken_stream_ends_in_response_failed(client, gemini_fake, usage_events):
    with client.responses.stream(model="gemini-break", input="Hello") as stream:
        events = list(stream)
    assert events[-1].type == "response.failed"
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert deltas == fake_gemini.REPLY[:2]
    [event] = usage_events(None)
    assert event["status"] == 502
    assert event["prompt_tokens"] == fake_gemini.PROMPT_TOKENS  # Gemini's count from the events that did arrive
