"""POST /v1/responses (and GET/DELETE /v1/responses/{id}, input_items) driven by the official openai SDK:
a native OpenAI target (tests/fake_upstream.py's /responses) and an OpenAI-format target without the
Responses API (groq: translated to chat completions). Anthropic and Gemini targets are in
test_responses_providers.py; error cases in test_responses_errors.py."""

import openai
import pytest

from tests.fake_upstream import REPLY

pytestmark = [pytest.mark.e2e]

TEXT = "".join(REPLY)
WEATHER_TOOL = {"type": "function", "name": "get_weather", "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture
def client(gateway, tenant_key):
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key=tenant_key[2], max_retries=0)


@pytest.fixture
def groq(make_provider, upstream):
    return make_provider(name="groq", provider_type="groq", base_url=upstream.base_url, api_key="gsk-upstream")


def _event(usage_events, request_id):
    [event] = usage_events(request_id)
    assert event["endpoint"] == "/v1/responses"
    return event


# -- native: an OpenAI target gets the Responses request as is -------------------------------------------


def test_native_create_relays_the_upstream_answer_under_the_gateways_id(client, provider, upstream, usage_events):
    raw = client.responses.with_raw_response.create(model="gpt-4o-mini", input="Hi", instructions="Be brief.",
                                                    temperature=0.5, metadata={"run": "1"})
    response = raw.parse()
    assert response.object == "response" and response.status == "completed"
    assert response.id.startswith("resp_") and response.id != "resp_fake0123456789"
    assert response.output_text == TEXT
    assert response.model == "gpt-4o-mini-2024-07-18"
    assert response.provider == "openai"
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (
        17, len(REPLY), 17 + len(REPLY))
    assert response.usage.input_tokens_details.cached_tokens == 4
    [sent] = upstream.responses_requests()
    assert sent["headers"]["authorization"] == "Bearer sk-upstream-secret"
    body = sent["body"]
    # As the client sent it: the upstream's model name, every field untouched.
    assert body == {"model": "gpt-4o-mini", "input": "Hi", "instructions": "Be brief.", "temperature": 0.5,
                    "metadata": {"run": "1"}}
    event = _event(usage_events, raw.headers["x-request-id"])
    assert (event["prompt_tokens"], event["completion_tokens"], event["cached_tokens"], event["usage_source"]) == (
        17, len(REPLY), 4, "reported")
    assert (event["provider"], event["status"], event["stream"]) == ("openai", 200, False)


def test_native_stream_relays_typed_events_with_sequence_numbers(client, provider, upstream, usage_events):
    with client.responses.stream(model="gpt-4o-mini", input="Hi") as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert types.count("response.output_text.delta") == len(REPLY)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert {e.response.id for e in events if hasattr(e, "response")} == {final.id}
    assert final.id.startswith("resp_") and final.id != "resp_fake0123456789"
    assert final.output_text == TEXT and final.provider == "openai"
    assert upstream.responses_requests()[0]["body"]["stream"] is True
    [event] = usage_events(None)
    assert event["endpoint"] == "/v1/responses" and event["stream"] is True
    assert (event["prompt_tokens"], event["completion_tokens"], event["usage_source"]) == (17, len(REPLY), "reported")


def _round_trip(client, model):
    """A function-calling round trip: call, answer the call with previous_response_id, then the stored
    response, its input items and its deletion."""
    first = client.responses.create(model=model, input="Weather in Paris?", tools=[WEATHER_TOOL])
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and call.arguments == '{"city":"Paris"}'
    second = client.responses.create(
        model=model, previous_response_id=first.id, tools=[WEATHER_TOOL],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": '{"temp_c": 21}'}])
    assert second.previous_response_id == first.id
    assert client.responses.retrieve(first.id).id == first.id
    items = client.responses.input_items.list(second.id, order="asc")
    kinds = [item.type for item in items.data]
    assert kinds == ["message", "function_call", "function_call_output"]
    assert items.first_id == items.data[0].id and items.last_id == items.data[-1].id and not items.has_more
    page = client.responses.input_items.list(second.id, order="asc", limit=1, after=items.data[0].id)
    assert [item.id for item in page.data] == [items.data[1].id] and page.has_more
    deleted = client.responses.delete(first.id)
    assert deleted is None  # the SDK returns nothing for a 200 delete
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    return call


def test_native_function_call_round_trip_with_previous_response_id(client, provider, upstream):
    call = _round_trip(client, "tool-model")
    first, second = upstream.responses_requests()[:2]
    assert "previous_response_id" not in second["body"]  # the gateway's id means nothing upstream
    assert first["body"]["input"] == "Weather in Paris?"
    assert second["body"]["input"] == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
        {"id": "fc_fake1", "type": "function_call", "status": "completed", "call_id": call.call_id,
         "name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call_output", "call_id": call.call_id, "output": '{"temp_c": 21}'}]


def test_store_false_keeps_nothing(client, provider):
    response = client.responses.create(model="gpt-4o-mini", input="Hi", store=False)
    assert response.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


# -- translated: a provider without the Responses API gets chat completions -------------------------------


def test_translated_create_goes_through_chat_completions(client, groq, upstream, usage_events):
    raw = client.responses.with_raw_response.create(
        model="groq/gpt-4o-mini", input=[{"role": "user", "content": "Hi"}], instructions="Be brief.",
        max_output_tokens=50, temperature=0.2, text={"format": {"type": "json_schema", "name": "reply",
                                                              "schema": {"type": "object"}, "strict": True}})
    response = raw.parse()
    assert response.output_text == TEXT and response.status == "completed"
    assert response.provider == "groq" and response.id.startswith("resp_")
    assert response.instructions == "Be brief." and response.max_output_tokens == 50
    assert (response.usage.input_tokens, response.usage.output_tokens) == (11, len(REPLY))
    assert response.usage.input_tokens_details.cached_tokens == 2
    assert upstream.responses_requests() == []
    [sent] = upstream.chat_requests()
    body = sent["body"]
    assert sent["headers"]["authorization"] == "Bearer gsk-upstream"
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert (body["max_tokens"], body["temperature"]) == (50, 0.2)
    assert body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "reply", "schema": {"type": "object"}, "strict": True}}
    event = _event(usage_events, raw.headers["x-request-id"])
    assert (event["provider"], event["prompt_tokens"], event["completion_tokens"]) == ("groq", 11, len(REPLY))


def test_translated_stream_is_a_well_formed_event_sequence(client, groq, upstream, usage_events):
    with client.responses.stream(model="groq/gpt-4o-mini", input="Hi") as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = [e.type for e in events]
    assert types == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added", *["response.output_text.delta"] * len(REPLY),
                     "response.output_text.done", "response.content_part.done", "response.output_item.done",
                     "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert final.output_text == TEXT and final.provider == "groq"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (11, len(REPLY))
    assert upstream.chat_requests()[0]["body"]["stream_options"] == {"include_usage": True}
    [event] = usage_events(None)
    assert (event["endpoint"], event["stream"], event["usage_source"]) == ("/v1/responses", True, "reported")


def test_translated_stream_of_a_function_call(client, groq, upstream):
    with client.responses.stream(model="groq/tool-model", input="Weather?", tools=[WEATHER_TOOL]) as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = [e.type for e in events]
    assert "response.function_call_arguments.delta" in types and "response.function_call_arguments.done" in types
    [call] = final.output
    assert (call.type, call.name, call.arguments, call.call_id) == ("function_call", "get_weather",
                                                                    '{"city":"Paris"}', "call_1")
    assert upstream.chat_requests()[0]["body"]["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city", "parameters": WEATHER_TOOL["parameters"]}}]


def test_translated_function_call_round_trip(client, groq, upstream):
    call = _round_trip(client, "groq/tool-model")
    second = upstream.chat_requests()[1]["body"]
    assert second["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call.call_id, "type": "function", "function": {"name": "get_weather",
                                                                   "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": call.call_id, "content": '{"temp_c": 21}'}]


def test_a_conversation_continues_on_another_provider(client, provider, groq, upstream):
    first = client.responses.create(model="openai/gpt-4o-mini", input="Hi")
    second = client.responses.create(model="groq/gpt-4o-mini", previous_response_id=first.id, input="And again?")
    assert second.output_text == TEXT
    messages = upstream.chat_requests()[0]["body"]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"] == TEXT


def test_another_tenant_cannot_read_or_delete_a_response(client, gateway, provider):
    from accounting.tenants.services import do_create_api_key, do_create_tenant

    response = client.responses.create(model="gpt-4o-mini", input="Secret plans")
    _, other_key = do_create_api_key(do_create_tenant("rival", "Rival"), name="ci")
    rival = openai.OpenAI(base_url=f"{gateway}/v1", api_key=other_key, max_retries=0)
    for call in (lambda: rival.responses.retrieve(response.id), lambda: rival.responses.delete(response.id),
                 lambda: rival.responses.input_items.list(response.id),
                 lambda: rival.responses.create(model="gpt-4o-mini", input="x", previous_response_id=response.id)):
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert caught.value.body["type"] == "not_found_error"
        assert "Secret" not in str(caught.value.body)
    assert client.responses.retrieve(response.id).output_text == TEXT  # still there for its own tenant


def test_an_xai_target_gets_the_responses_api_natively(client, make_provider, upstream, usage_events):
    make_provider(name="xai", provider_type="xai", base_url=upstream.base_url, api_key="xai-upstream")
    response = client.responses.create(model="xai/gpt-4o-mini", input="Hi")
    assert response.output_text == TEXT and response.provider == "xai"
    [sent] = upstream.responses_requests()
    assert sent["headers"]["authorization"] == "Bearer xai-upstream" and upstream.chat_requests() == []
    [event] = usage_events(None)
    assert (event["provider_type"], event["prompt_tokens"], event["cached_tokens"]) == ("xai", 17, 4)


def test_a_virtual_model_fails_over_from_a_native_to_a_translated_target(client, provider, groq, upstream,
                                                                         usage_events, settings):
    from providers.models import ModelAlias

    settings.RETRY_MAX = 0
    ModelAlias.objects.create(name="resilient", targets=[{"target": "openai/fail-500", "weight": 5},
                                                         {"target": "groq/gpt-4o-mini", "weight": 1}])
    raw = client.responses.with_raw_response.create(model="resilient", input="Hi")
    response = raw.parse()
    assert response.provider == "groq" and response.output_text == TEXT
    assert [r["body"]["model"] for r in upstream.responses_requests() + upstream.chat_requests()] == [
        "fail-500", "gpt-4o-mini"]
    [event] = usage_events(raw.headers["x-request-id"])
    assert [(a["provider"], a["status"]) for a in event["attempts"]] == [("openai", 502), ("groq", 200)]


def test_the_async_client(gateway, tenant_key, groq):
    import asyncio

    async def run():
        async with openai.AsyncOpenAI(base_url=f"{gateway}/v1", api_key=tenant_key[2], max_retries=0) as client:
            created = await client.responses.create(model="groq/gpt-4o-mini", input="Hi")
            async with client.responses.stream(model="groq/gpt-4o-mini", input="Hi") as stream:
                deltas = [event.delta async for event in stream if event.type == "response.output_text.delta"]
                final = await stream.get_final_response()
            return created, deltas, final, await client.responses.retrieve(created.id)

    created, deltas, final, retrieved = asyncio.run(run())
    assert created.output_text == final.output_text == "".join(deltas) == TEXT
    assert retrieved.id == created.id and retrieved.output_text == TEXT


# Codex's tools (tests/fixtures/agents/codex-*.json record the shape): a plain function, hosted web search, and
# a namespace grouping its sub-agent functions; last-tool-model calls the namespace's function.
CODEX_TOOLS = [{"type": "function", "name": "exec_command", "parameters": {"type": "object"}},
               {"type": "web_search", "external_web_access": False},
               {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents.",
                "tools": [{"type": "function", "name": "spawn_agent", "parameters": WEATHER_TOOL["parameters"]}]}]


def _assert_namespaced(call):
    assert (call.type, call.namespace, call.name, call.call_id) == ("function_call", "multi_agent_v1",
                                                                    "spawn_agent", "call_1")


@pytest.mark.parametrize("stream", [False, True])
def test_translated_call_of_a_namespaced_function_comes_back_with_its_namespace(client, groq, upstream, stream):
    if stream:
        with client.responses.stream(model="groq/last-tool-model", input="Spawn one.", tools=CODEX_TOOLS) as events:
            added = [e.item for e in events if e.type in ("response.output_item.added", "response.output_item.done")]
            first = events.get_final_response()
        for item in added:
            _assert_namespaced(item)
    else:
        first = client.responses.create(model="groq/last-tool-model", input="Spawn one.", tools=CODEX_TOOLS)
    [call] = first.output
    _assert_namespaced(call)
    assert [t["function"]["name"] for t in upstream.chat_requests()[0]["body"]["tools"]] == [
        "exec_command", "multi_agent_v1__spawn_agent"]
    _assert_namespaced(client.responses.retrieve(first.id).output[0])
    # Codex answers the call: the stored call is replayed upstream under the name the upstream gave it.
    second = client.responses.create(
        model="groq/gpt-4o-mini", previous_response_id=first.id, tools=CODEX_TOOLS,
        input=[{"type": "function_call_output", "call_id": "call_1", "output": "spawned"}])
    items = client.responses.input_items.list(second.id, order="asc").data
    _assert_namespaced(items[1])
    replayed = upstream.chat_requests()[1]["body"]["messages"][1]["tool_calls"][0]["function"]
    assert replayed["name"] == "multi_agent_v1__spawn_agent"
