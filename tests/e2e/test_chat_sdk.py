"""The gateway driven by the official openai SDK against the fake upstream."""

import asyncio

import openai
import pytest

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def client(gateway, provider, tenant_key):
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key=tenant_key[2], max_retries=0)


def test_json_completion_names_provider_and_records_one_event(client, upstream, usage_events, tenant_key):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}])
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello from the fake upstream!"
    assert completion.provider == "openai"
    assert completion.usage.prompt_tokens == 11
    assert completion.usage.prompt_tokens_details.cached_tokens == 2

    sent = upstream.chat_requests()
    assert len(sent) == 1
    assert sent[0]["headers"]["authorization"] == "Bearer sk-upstream-secret"
    assert sent[0]["body"]["model"] == "gpt-4o-mini"

    events = usage_events(raw.headers["x-request-id"])
    assert len(events) == 1
    event = events[0]
    assert event["tenant"] == "acme" and event["api_key_id"] == tenant_key[1].id
    assert (event["provider"], event["model"], event["status"], event["stream"]) == ("openai", "gpt-4o-mini", 200,
                                                                                       False)
    assert (event["prompt_tokens"], event["completion_tokens"], event["cached_tokens"]) == (11, 6, 2)
    assert event["usage_source"] == "reported"


def test_unknown_fields_reach_the_upstream_untouched_and_provider_is_stripped(client, upstream):
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], temperature=0.3,
        extra_body={"provider": "openai", "logit_bias": {"50256": -100}, "x_custom": {"a": [1, 2]}})
    body = upstream.chat_requests()[0]["body"]
    assert "provider" not in body
    assert body["logit_bias"] == {"50256": -100}
    assert body["x_custom"] == {"a": [1, 2]}
    assert body["temperature"] == 0.3


def test_stream_relays_chunks_and_one_done_without_usage_when_not_asked(gateway, provider, tenant_key, upstream,
                                                                        usage_events):
    import httpx

    with httpx.stream("POST", f"{gateway}/v1/chat/completions",
                      headers={"Authorization": f"Bearer {tenant_key[2]}"},
                      json={"model": "gpt-4o-mini", "stream": True,
                            "messages": [{"role": "user", "content": "Hello"}]}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
        request_id = response.headers["x-request-id"]
    assert lines.count("data: [DONE]") == 1 and lines[-1] == "data: [DONE]"
    assert not any('"usage"' in line for line in lines)
    # The gateway asked the upstream for usage all the same, and billed what it reported.
    assert upstream.chat_requests()[0]["body"]["stream_options"] == {"include_usage": True}
    [event] = usage_events(request_id)
    assert (event["prompt_tokens"], event["completion_tokens"], event["usage_source"]) == (11, 6, "reported")


def test_stream_through_sdk_with_include_usage(client, usage_events):
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the fake upstream!"
    assert chunks[-1].usage.prompt_tokens == 11 and chunks[-1].usage.completion_tokens == 6
    assert all(c.provider == "openai" for c in chunks)
    assert len(usage_events()) == 1


def test_stream_tool_call_deltas(client):
    stream = client.chat.completions.create(
        model="tool-model", stream=True, messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}])
    calls = {}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or ():
                entry = calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                entry["id"] = call.id or entry["id"]
                if call.function and call.function.name:
                    entry["name"] += call.function.name
                if call.function and call.function.arguments:
                    entry["arguments"] += call.function.arguments
    assert calls == {0: {"id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'}}
    assert finish == "tool_calls"


def test_json_tool_call(client):
    completion = client.chat.completions.create(
        model="tool-model", messages=[{"role": "user", "content": "weather?"}],
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}])
    call = completion.choices[0].message.tool_calls[0]
    assert (call.id, call.function.name, call.function.arguments) == ("call_1", "get_weather", '{"city":"Paris"}')


def test_async_client_fifty_concurrent_calls(gateway, provider, tenant_key, usage_events, upstream):
    async def run():
        client = openai.AsyncOpenAI(base_url=f"{gateway}/v1", api_key=tenant_key[2], max_retries=0)
        async with client:
            return await asyncio.gather(*(
                client.chat.completions.create(model="gpt-4o-mini",
                                               messages=[{"role": "user", "content": f"n{i}"}])
                for i in range(50)))

    results = asyncio.run(run())
    assert len(results) == 50
    assert all(r.choices[0].message.content == "Hello from the fake upstream!" for r in results)
    assert len(upstream.chat_requests()) == 50
    events = usage_events(expect=50)
    assert len(events) == 50 and len({e["request_id"] for e in events}) == 50


def test_x_api_key_header_is_accepted(gateway, provider, tenant_key):
    import httpx

    response = httpx.post(f"{gateway}/v1/chat/completions", headers={"x-api-key": tenant_key[2]},
                          json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]})
    assert response.status_code == 200
    assert response.json()["provider"] == "openai"


def test_models_lists_provider_prefixed_ids(client):
    ids = {m.id for m in client.models.list()}
    assert "openai/gpt-4o-mini" in ids and "openai/tool-model" in ids
