"""The gateway in front of Google Gemini's native API, driven by the official openai SDK against a fake
Gemini (tests/fake_gemini.py, whose bodies follow https://ai.google.dev/api/generate-content)."""

import time

import httpx
import openai
import orjson
import pytest

from tests.fake_gemini import (
    CACHED_TOKENS,
    CANDIDATE_TOKENS,
    PROMPT_TOKENS,
    REPLY,
    SIGNATURE,
    THOUGHT_TOKENS,
    THOUGHTS,
)

pytestmark = [pytest.mark.e2e]

SECRET = "gm-upstream-secret"
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.fixture
def fake(gemini_server):
    gemini_server.requests.clear()
    return gemini_server


@pytest.fixture
def gemini_provider(make_provider, fake):
    return make_provider(name="gemini", provider_type="gemini", base_url=fake.base_url, api_key=SECRET)


@pytest.fixture
def client(gateway, gemini_provider, tenant_key):
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key=tenant_key[2], max_retries=0)


def stream_lines(gateway, tenant_key, body) -> tuple[list[str], str]:
    with httpx.stream("POST", f"{gateway}/v1/chat/completions", headers={"Authorization": f"Bearer {tenant_key[2]}"},
                      json=body, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
        return lines, response.headers["x-request-id"]


def chunks_of(lines) -> list[dict]:
    return [orjson.loads(line[len("data: "):]) for line in lines if line != "data: [DONE]"]


def assert_gemini_call(request, model, method):
    assert request["method"] == "POST"
    assert request["path"] == f"/v1beta/models/{model}:{method}"
    assert request["query"] == ("alt=sse" if method == "streamGenerateContent" else "")
    assert request["headers"]["x-goog-api-key"] == SECRET
    assert "authorization" not in request["headers"]
    assert SECRET not in request["path"] + request["query"]


def test_json_completion_translates_both_ways_and_records_gemini_usage(client, fake, usage_events, tenant_key):
    raw = client.chat.completions.with_raw_response.create(
        model="gemini-2.5-flash", temperature=0.3, max_tokens=200, stop=["END"],
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}])
    completion = raw.parse()
    assert completion.choices[0].message.content == "".join(REPLY)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.provider == "gemini"
    assert completion.model == "gemini-2.5-flash"
    assert completion.id.startswith("chatcmpl-")
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens,
            completion.usage.total_tokens) == (PROMPT_TOKENS, CANDIDATE_TOKENS, PROMPT_TOKENS + CANDIDATE_TOKENS)
    assert completion.usage.prompt_tokens_details.cached_tokens == CACHED_TOKENS

    [sent] = fake.generate_requests()
    assert_gemini_call(sent, "gemini-2.5-flash", "generateContent")
    assert sent["body"] == {
        "contents": [{"role": "user", "parts": [{"text": "Hello"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"maxOutputTokens": 200, "temperature": 0.3, "stopSequences": ["END"]},
    }

    [event] = usage_events(raw.headers["x-request-id"])
    assert (event["provider"], event["provider_type"], event["model"], event["status"], event["stream"]) == (
        "gemini", "gemini", "gemini-2.5-flash", 200, False)
    assert event["tenant"] == "acme" and event["api_key_id"] == tenant_key[1].id
    assert (event["prompt_tokens"], event["completion_tokens"], event["total_tokens"], event["cached_tokens"],
            event["reasoning_tokens"]) == (PROMPT_TOKENS, CANDIDATE_TOKENS, PROMPT_TOKENS + CANDIDATE_TOKENS,
                                           CACHED_TOKENS, 0)
    assert event["usage_source"] == "reported"


def test_stream_role_first_one_done_last_and_no_usage_unless_asked(gateway, gemini_provider, tenant_key, fake,
                                                                   usage_events):
    lines, request_id = stream_lines(gateway, tenant_key, {
        "model": "gemini-2.5-flash", "stream": True, "messages": [{"role": "user", "content": "Hello"}]})
    assert lines.count("data: [DONE]") == 1 and lines[-1] == "data: [DONE]"
    assert not any('"usage"' in line for line in lines)
    chunks = chunks_of(lines)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["provider"] == "gemini" and c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "".join(REPLY)
    assert [c["choices"][0]["finish_reason"] for c in chunks].count("stop") == 1
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"

    [sent] = fake.generate_requests()
    assert_gemini_call(sent, "gemini-2.5-flash", "streamGenerateContent")
    assert sent["headers"]["accept"] == "text/event-stream"
    assert sent["body"] == {"contents": [{"role": "user", "parts": [{"text": "Hello"}]}]}

    [event] = usage_events(request_id)
    assert (event["prompt_tokens"], event["completion_tokens"], event["cached_tokens"], event["status"],
            event["stream"], event["usage_source"]) == (PROMPT_TOKENS, CANDIDATE_TOKENS, CACHED_TOKENS, 200, True,
                                                        "reported")


def test_stream_through_sdk_with_include_usage(client, usage_events):
    stream = client.chat.completions.create(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "Hello"}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "".join(REPLY)
    last = chunks[-1]
    assert last.choices == []
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (
        PROMPT_TOKENS, CANDIDATE_TOKENS, PROMPT_TOKENS + CANDIDATE_TOKENS)
    assert last.usage.prompt_tokens_details.cached_tokens == CACHED_TOKENS
    assert sum(1 for c in chunks if c.usage is not None) == 1
    assert all(c.provider == "gemini" for c in chunks)
    [event] = usage_events()
    assert (event["prompt_tokens"], event["completion_tokens"]) == (PROMPT_TOKENS, CANDIDATE_TOKENS)


def test_json_tool_call_and_the_follow_up_turn(client, fake, usage_events):
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    completion = client.chat.completions.create(model="gemini-tool", messages=messages, tools=[WEATHER_TOOL],
                                                tool_choice={"type": "function", "function": {"name": "get_weather"}})
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert (call.id, call.type, call.function.name, orjson.loads(call.function.arguments)) == (
        "call_0", "function", "get_weather", {"city": "Paris"})
    # Gemini's thought signature travels with the call, for the client to send back unchanged.
    assert call.model_extra["extra_content"] == {"google": {"thought_signature": SIGNATURE}}
    sent = fake.generate_requests()[0]["body"]
    assert sent["tools"] == [{"functionDeclarations": [{
        "name": "get_weather", "description": "Current weather for a city",
        "parametersJsonSchema": WEATHER_TOOL["function"]["parameters"]}]}]
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}

    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "18°C and cloudy"}]
    client.chat.completions.create(model="gemini-2.5-flash", messages=messages, tools=[WEATHER_TOOL],
                                   tool_choice="auto")
    follow_up = fake.generate_requests()[1]["body"]
    assert follow_up["contents"] == [
        {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                                     "thoughtSignature": SIGNATURE}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather",
                                                         "response": {"result": "18°C and cloudy"}}}]},
    ]
    assert follow_up["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    assert len(usage_events(expect=2)) == 2


def test_stream_tool_call_arrives_whole(client):
    stream = client.chat.completions.create(
        model="gemini-tool", stream=True, messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=[WEATHER_TOOL], tool_choice="required")
    calls, finish = {}, None
    for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or ():
                entry = calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                entry["id"] = call.id or entry["id"]
                entry["name"] += call.function.name or ""
                entry["arguments"] += call.function.arguments or ""
    assert calls == {0: {"id": "call_0", "name": "get_weather", "arguments": '{"city":"Paris"}'}}
    assert finish == "tool_calls"


def test_reasoning_effort_on_2_5_asks_a_budget_and_returns_reasoning(client, fake, usage_events):
    raw = client.chat.completions.with_raw_response.create(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "Hello"}], reasoning_effort="high")
    completion = raw.parse()
    message = completion.choices[0].message
    assert message.content == "".join(REPLY)
    assert message.model_extra["reasoning_content"] == "".join(THOUGHTS)
    assert completion.usage.completion_tokens == CANDIDATE_TOKENS + THOUGHT_TOKENS
    assert completion.usage.completion_tokens_details.reasoning_tokens == THOUGHT_TOKENS
    [sent] = fake.generate_requests()
    assert sent["body"]["generationConfig"] == {"thinkingConfig": {"thinkingBudget": 24576, "includeThoughts": True}}
    [event] = usage_events(raw.headers["x-request-id"])
    assert (event["prompt_tokens"], event["completion_tokens"], event["reasoning_tokens"], event["total_tokens"]) == (
        PROMPT_TOKENS, CANDIDATE_TOKENS + THOUGHT_TOKENS, THOUGHT_TOKENS,
        PROMPT_TOKENS + CANDIDATE_TOKENS + THOUGHT_TOKENS)


def test_reasoning_effort_on_gemini_3_streams_reasoning_then_content(client, fake, usage_events):
    stream = client.chat.completions.create(
        model="gemini-3-pro-preview", messages=[{"role": "user", "content": "Hello"}], stream=True,
        stream_options={"include_usage": True}, extra_body={"reasoning": {"effort": "low"}})
    chunks = list(stream)
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
                        for c in chunks if c.choices)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert (reasoning, content) == ("".join(THOUGHTS), "".join(REPLY))
    first_content = next(i for i, c in enumerate(chunks) if c.choices and c.choices[0].delta.content)
    last_reasoning = max(i for i, c in enumerate(chunks)
                         if c.choices and (c.choices[0].delta.model_extra or {}).get("reasoning_content"))
    assert last_reasoning < first_content
    assert chunks[-1].usage.completion_tokens_details.reasoning_tokens == THOUGHT_TOKENS
    [sent] = fake.generate_requests()
    assert_gemini_call(sent, "gemini-3-pro-preview", "streamGenerateContent")
    assert sent["body"]["generationConfig"] == {"thinkingConfig": {"thinkingLevel": "low", "includeThoughts": True}}
    [event] = usage_events()
    assert (event["completion_tokens"], event["reasoning_tokens"]) == (CANDIDATE_TOKENS + THOUGHT_TOKENS,
                                                                       THOUGHT_TOKENS)


def test_blocked_prompt_is_a_400_in_the_envelope(gateway, gemini_provider, tenant_key, fake, usage_events):
    response = httpx.post(f"{gateway}/v1/chat/completions", headers={"Authorization": f"Bearer {tenant_key[2]}"},
                          json={"model": "gemini-blocked", "messages": [{"role": "user", "content": "something"}]})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "prompt_blocked"
    assert "SAFETY" in error["message"] and "blocked" in error["message"]
    assert len(fake.generate_requests()) == 1
    [event] = usage_events(response.headers["x-request-id"])
    assert event["status"] == 400 and event["provider"] == "gemini"


def test_blocked_prompt_through_the_sdk_raises_bad_request(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="gemini-blocked", messages=[{"role": "user", "content": "something"}])
    assert err.value.code == "prompt_blocked"


def test_gemini_http_error_reaches_the_client_with_its_message(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="gemini-bad-request", messages=[{"role": "user", "content": "x"}])
    assert "contents is not specified" in err.value.message
    assert err.value.code == "INVALID_ARGUMENT"


def test_mid_stream_break_ends_with_an_error_event_and_one_usage_event(gateway, gemini_provider, tenant_key,
                                                                      usage_events):
    lines, request_id = stream_lines(gateway, tenant_key, {
        "model": "gemini-break", "stream": True, "messages": [{"role": "user", "content": "Hello"}]})
    assert "data: [DONE]" not in lines
    chunks = chunks_of(lines)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["error"]["type"] == "provider_error"
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1]) == "".join(REPLY[:2])
    [event] = usage_events(request_id)
    assert event["status"] == 502 and event["stream"] is True
    assert event["prompt_tokens"] == PROMPT_TOKENS  # Gemini's count from the events that did arrive


def test_error_event_mid_stream(gateway, gemini_provider, tenant_key, usage_events):
    lines, request_id = stream_lines(gateway, tenant_key, {
        "model": "gemini-error-event", "stream": True, "messages": [{"role": "user", "content": "Hello"}]})
    assert "data: [DONE]" not in lines
    error = chunks_of(lines)[-1]["error"]
    assert "overloaded" in error["message"]
    [event] = usage_events(request_id)
    assert event["status"] == 502


def test_models_listing_uses_the_key_header_and_keeps_generate_content_models(client, fake):
    # The registry fetches model lists in the background: poll until the fake's listing is fetched and shown.
    deadline = time.monotonic() + 5
    ids, listing = set(), []
    while time.monotonic() < deadline:
        ids = {m.id for m in client.models.list()}
        listing = [r for r in fake.requests if r["method"] == "GET"]
        if listing and "gemini/gemini-tool" in ids:
            break
        time.sleep(0.05)
    assert {"gemini/gemini-2.5-flash", "gemini/gemini-3-pro-preview", "gemini/gemini-tool"} <= ids
    assert "gemini/text-embedding-004" in ids  # served by /v1/embeddings (batchEmbedContents)
    assert listing and all(r["path"] == "/v1beta/models" and r["headers"]["x-goog-api-key"] == SECRET
                           and SECRET not in r["query"] and "key=" not in r["query"] for r in listing)


def test_embeddings_through_batch_embed_contents(client, fake, usage_events):
    # The SDK asks for base64 by default and decodes it: the vectors survive the round trip.
    raw = client.embeddings.with_raw_response.create(model="gemini/text-embedding-004", input=["hello", "world"])
    result = raw.parse()
    assert [d.index for d in result.data] == [0, 1]
    assert result.data[1].embedding == pytest.approx([0.2, 0.2, 0.3])
    [sent] = [r for r in fake.requests if r["method"] == "POST"]
    assert sent["path"] == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert sent["headers"]["x-goog-api-key"] == SECRET
    assert [r["content"]["parts"][0]["text"] for r in sent["body"]["requests"]] == ["hello", "world"]
    [event] = usage_events(raw.headers["x-request-id"])
    # Gemini reports no tokens for embeddings: billed on an estimate of the input.
    assert (event["endpoint"], event["provider"], event["usage_source"]) == ("/v1/embeddings", "gemini", "estimated")
    assert event["prompt_tokens"] > 0


def test_embeddings_of_token_arrays_are_a_400_and_not_forwarded(client, fake, usage_events):
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="gemini/text-embedding-004", input=[[1, 2, 3]])
    assert caught.value.body["param"] == "input"
    assert [r for r in fake.requests if r["method"] == "POST"] == []
    assert usage_events(expect=0) == []
