"""providers.openai_compat.responses: the Responses API without a network, against the bodies recorded
from OpenAI and xAI (tests/fixtures/recorded/, see its README) and the openai SDK's own types and
stream accumulator."""

from pathlib import Path

import orjson
import pytest
from openai import NOT_GIVEN
from openai._models import construct_type
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent

from providers.base import SSEDecoder, Target, UpstreamError, Usage
from providers.openai_compat import StreamParser
from providers.openai_compat import responses as wire

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "recorded"


def recorded(path: str) -> bytes:
    return (RECORDED / path).read_bytes()


def sse_events(raw: bytes) -> list[tuple[str | None, bytes]]:
    decoder = SSEDecoder()
    return decoder.feed(raw) + decoder.close()


def target(provider_type: str) -> Target:
    return Target(id=1, name=provider_type, provider_type=provider_type, wire="openai_compat",
                  base_url="https://api.example.com/v1", api_key="sk-test")


def sdk_final(events: list[dict]) -> Response:
    """Replays events through the openai SDK's own stream accumulator (what responses.stream() uses)."""
    state = ResponseStreamState(input_tools=NOT_GIVEN, text_format=NOT_GIVEN)
    for event in events:
        state.handle_event(construct_type(type_=ResponseStreamEvent, value=orjson.loads(orjson.dumps(event))))
    return state._completed_response


# -- native upstreams: the recorded bodies -----------------------------------------------------------------

JSON_RECORDINGS = {
    "openai/responses.json": (Usage(17, 5, 22, 0, 0), ["message"]),
    "xai/responses.json": (Usage(17, 276, 293, 3, 272), ["reasoning", "message"]),
}


@pytest.mark.parametrize("path", JSON_RECORDINGS)
def test_recorded_response_bodies(path):
    usage, kinds = JSON_RECORDINGS[path]
    data = orjson.loads(recorded(path))
    assert wire.usage_from_responses(data["usage"]) == usage
    response = construct_type(type_=Response, value=data)  # as the SDK reads it
    assert [item.type for item in response.output] == kinds
    assert response.output_text == "Hello, World!"


STREAM_RECORDINGS = {
    "openai/responses_stream.txt": Usage(17, 5, 22, 0, 0),
    "xai/responses_stream.txt": Usage(17, 185, 202, 3, 181),
}


@pytest.mark.parametrize("path", STREAM_RECORDINGS)
def test_recorded_streams_through_the_native_reader(path):
    reader = wire.NativeStreamReader("resp_gateway", "openai", previous_response_id="resp_before")
    events = [event for _, data in sse_events(recorded(path)) if (event := reader.feed(data)) is not None]
    assert reader.complete and reader.status == "completed"
    assert reader.usage == STREAM_RECORDINGS[path]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    lifecycle = [e["response"] for e in events if "response" in e]
    assert {r["id"] for r in lifecycle} == {"resp_gateway"}  # renamed in every lifecycle event
    assert {r["provider"] for r in lifecycle} == {"openai"}
    assert {r["previous_response_id"] for r in lifecycle} == {"resp_before"}
    assert [item["type"] for item in reader.output] == [item["type"] for item in lifecycle[-1]["output"]]
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == "Hello, World!"
    final = sdk_final(events)
    assert final.id == "resp_gateway" and final.output_text == "Hello, World!"
    assert reader.sequence == len(events)


def test_a_native_error_event_raises():
    reader = wire.NativeStreamReader("resp_x", "openai")
    with pytest.raises(Exception) as caught:
        reader.feed(b'{"type":"error","code":"server_error","message":"boom","sequence_number":3}')
    assert caught.value.message == "boom"


# -- chat stream -> Responses events ----------------------------------------------------------------------


def translate(raw: bytes, request: dict | None = None) -> tuple[list[dict], wire.StreamTranslator]:
    parser = StreamParser("gpt-4o-mini")
    translator = wire.StreamTranslator(request or {"model": "gpt-4o-mini"}, "resp_t", "gpt-4o-mini", "openai")
    events = translator.start()
    for event, data in sse_events(raw):
        for chunk in parser.feed(event, data):
            events += translator.feed(chunk)
    assert parser.complete
    return events + translator.finish(parser.usage), translator


def test_the_recorded_chat_stream_becomes_a_responses_stream_the_sdk_accepts():
    events, _ = translate(recorded("openai/chat_completion_stream.txt"))
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    kinds = [e["type"] for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    final = sdk_final(events)
    assert final.id == "resp_t" and final.status == "completed"
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert final.output_text == deltas and deltas
    assert final.usage is None  # recorded without stream_options.include_usage: nothing to report


def chunk(delta: dict, finish=None) -> dict:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_reasoning_text_and_parallel_calls_are_separate_items_in_order():
    translator = wire.StreamTranslator({"model": "m"}, "resp_t", "m", "p")
    events = translator.start()
    events += translator.feed(chunk({"reasoning_content": "Think"}))
    events += translator.feed(chunk({"content": "Checking."}))
    events += translator.feed(chunk({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "a",
                                                                                         "arguments": '{"x"'}}]}))
    events += translator.feed(chunk({"tool_calls": [{"index": 1, "id": "c2", "function": {"name": "b",
                                                                                         "arguments": "{}"}}]}))
    events += translator.feed(chunk({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}))
    events += translator.feed(chunk({}, "tool_calls"))
    events += translator.finish(Usage(5, 7, 12, 0, 3))
    final = sdk_final(events)
    assert [item.type for item in final.output] == ["reasoning", "message", "function_call", "function_call"]
    assert [(c.call_id, c.name, c.arguments) for c in final.output[2:]] == [("c1", "a", '{"x":1}'), ("c2", "b", "{}")]
    assert final.usage.output_tokens_details.reasoning_tokens == 3


def test_a_length_finish_is_incomplete_and_a_failure_is_failed():
    translator = wire.StreamTranslator({"model": "m", "max_output_tokens": 2}, "resp_t", "m", "p")
    events = translator.start() + translator.feed(chunk({"content": "Hi"}, "length")) + translator.finish(None)
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    translator = wire.StreamTranslator({"model": "m"}, "resp_f", "m", "p")
    events = translator.start() + translator.feed(chunk({"content": "Hi"}))
    failed = translator.fail("broke", "upstream_stream_broken")
    assert failed["type"] == "response.failed" and failed["sequence_number"] == len(events)
    assert failed["response"]["error"] == {"code": "upstream_stream_broken", "message": "broke"}


# -- requests: Responses -> chat ----------------------------------------------------------------------------


def test_request_translation():
    body = {"model": "m", "instructions": "Sys", "max_output_tokens": 9, "temperature": 0.1, "top_p": 0.9,
            "reasoning": {"effort": "minimal"}, "parallel_tool_calls": False, "tool_choice": {"type": "function",
                                                                                           "name": "f"},
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True}],
            "text": {"format": {"type": "json_object"}}, "metadata": {"a": "b"}, "store": True}
    items = [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Dev"}]},
        {"role": "user", "content": [{"type": "input_text", "text": "Look"},
                                     {"type": "input_image", "image_url": "https://x/y.png", "detail": "low"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Sure."}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "f", "arguments": "{\"a\":1}",
         "extra_content": {"google": {"thought_signature": "sig"}}},
        {"type": "function_call_output", "call_id": "c1", "output": "one"},
        {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "two"}]},
    ]
    chat = wire.to_chat_body(body, items, stream=True)
    assert chat["messages"] == [
        {"role": "system", "content": "Sys"},
        {"role": "system", "content": "Dev"},
        {"role": "user", "content": [{"type": "text", "text": "Look"},
                                     {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}]},
        {"role": "assistant", "content": "Sure.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "c2", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"},
             "extra_content": {"google": {"thought_signature": "sig"}}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "tool", "tool_call_id": "c2", "content": "two"},
    ]
    assert chat["tools"] == [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"},
                                                               "strict": True}}]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert (chat["max_tokens"], chat["temperature"], chat["top_p"], chat["parallel_tool_calls"]) == (9, 0.1, 0.9,
                                                                                                      False)
    assert chat["reasoning"] == {"effort": "low"}
    assert chat["response_format"] == {"type": "json_object"}
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    assert "metadata" not in chat and "store" not in chat


@pytest.mark.parametrize("body, items, param", [
    ({"model": "m", "tools": [{"type": "file_search"}]}, [], "tools[0]"),
    ({"model": "m", "tools": [{"type": "function", "name": "f"}], "tool_choice": {"type": "web_search"}}, [],
     "tool_choice"),
    ({"model": "m"}, [{"type": "web_search_call", "id": "ws_1"}], "input[0]"),
    ({"model": "m"}, [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}],
     "input[0].content[0].image_url"),
])
def test_what_chat_cannot_say_is_refused(body, items, param):
    with pytest.raises(UpstreamError) as caught:
        wire.to_chat_body(body, items, stream=False)
    assert (caught.value.status, caught.value.param) == (400, param)


def test_native_request_is_the_body_as_sent_with_model_and_context():
    body = {"model": "alias", "input": "Hi", "previous_response_id": "resp_1", "provider": "openai",
            "tools": [{"type": "web_search"}], "store": False}
    items = [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}", "extra_content": {"g": 1}}]
    request = wire.build_native_request(body, items, target("openai"), "gpt-4o", stream=True)
    assert request.url == "https://api.example.com/v1/responses"
    assert request.headers["authorization"] == "Bearer sk-test" and request.headers["accept"] == "text/event-stream"
    assert orjson.loads(request.body) == {"model": "gpt-4o", "tools": [{"type": "web_search"}], "store": False,
                                          "input": [{"type": "function_call", "call_id": "c", "name": "f",
                                                     "arguments": "{}"}]}
    alone = wire.build_native_request(body, None, target("openai"), "gpt-4o", stream=False)
    assert orjson.loads(alone.body)["input"] == "Hi"  # no history: the input exactly as sent
    assert alone.headers["accept"] == "application/json"


def test_native_support_is_by_provider_type():
    assert wire.supports_native(target("openai")) and wire.supports_native(target("xai"))
    assert not wire.supports_native(target("groq"))


# -- responses: chat -> Responses ---------------------------------------------------------------------------


def test_a_chat_completion_becomes_output_items():
    chat = {"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "Checking.", "reasoning_content": "Hmm",
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}]}
    output, status, incomplete = wire.from_chat_response(chat)
    assert (status, incomplete) == ("completed", None)
    data = wire.response_object({"model": "m", "store": False}, "resp_1", 1, "m", status, output,
                                wire.usage_to_responses(Usage(3, 4, 7, 1, 2)), "groq")
    response = construct_type(type_=Response, value=data)
    assert [item.type for item in response.output] == ["reasoning", "message", "function_call"]
    assert response.output_text == "Checking." and response.store is False
    assert (response.usage.input_tokens_details.cached_tokens, response.usage.output_tokens_details.reasoning_tokens,
            response.usage.total_tokens) == (1, 2, 7)
    _, status, incomplete = wire.from_chat_response({"choices": [{"message": {"content": "x"},
                                                                  "finish_reason": "length"}]})
    assert (status, incomplete) == ("incomplete", {"reason": "max_output_tokens"})


def test_stored_items_are_listed_with_stable_ids_and_replayed_without_translated_reasoning():
    items = wire.input_items("Hi") + [{"type": "function_call_output", "call_id": "c", "output": "x"}]
    listed = wire.listed_items(items, "resp_abc")
    assert [item["id"] for item in listed] == ["msg_abc_0", "fco_abc_1"]
    assert listed == wire.listed_items(items, "resp_abc")
    minted = wire.from_chat_response({"choices": [{"message": {"reasoning_content": "Hmm", "content": "x"}}]})[0]
    native = orjson.loads(recorded("xai/responses.json"))["output"]
    assert [item["type"] for item in minted + native] == ["reasoning", "message", "reasoning", "message"]
    kept = wire.replayable(minted + native)
    assert [item["id"] for item in kept] == [minted[1]["id"], native[0]["id"], native[1]["id"]]


def test_system_and_developer_items_mid_conversation_stay_in_place():
    """Responses input items in the system or developer role keep their position through the chat translation
    (a chat system message); the Gemini adapter then marks one that follows a turn in place."""
    from providers import gemini

    items = [{"type": "message", "role": "user", "content": "Hi"},
             {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Be brief."}]},
             {"role": "system", "content": "No emoji."}]
    messages = wire.to_chat_messages("Top.", items)
    assert messages == [{"role": "system", "content": "Top."}, {"role": "user", "content": "Hi"},
                        {"role": "system", "content": "Be brief."}, {"role": "system", "content": "No emoji."}]
    payload = gemini.build_payload({"messages": messages}, "gemini-2.5-flash")
    marked = gemini.request.MID_CONVERSATION_SYSTEM
    assert payload["systemInstruction"] == {"parts": [{"text": "Top."}]}
    assert payload["contents"] == [{"role": "user", "parts": [
        {"text": "Hi"}, {"text": marked % "Be brief."}, {"text": marked % "No emoji."}]}]


def test_codex_tools_translate_namespaces_prefixed_and_hosted_web_search_left_out():
    """Codex offers web search and groups its sub-agent tools in a namespace on every request; a provider without
    the Responses API gets the functions, and no web search, rather than a 400."""
    tools = [{"type": "function", "name": "exec_command", "parameters": {"type": "object"}},
             {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents.",
              "tools": [{"type": "function", "name": "spawn_agent", "description": "Spawn.",
                         "parameters": {"type": "object"}}]},
             {"type": "web_search", "external_web_access": False}]
    chat = wire.to_chat_body({"model": "m", "tools": tools, "tool_choice": "auto"}, [], False)
    assert chat["tools"] == [
        {"type": "function", "function": {"name": "exec_command", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "multi_agent_v1__spawn_agent", "description": "Spawn.",
                                          "parameters": {"type": "object"}}}]
    assert chat["tool_choice"] == "auto"
    only_search = wire.to_chat_body({"model": "m", "tools": [tools[2]], "tool_choice": "auto"}, [], False)
    assert "tools" not in only_search and "tool_choice" not in only_search
    with pytest.raises(UpstreamError) as info:
        wire.to_chat_body({"model": "m", "tools": [{"type": "namespace", "name": "n", "tools": [
            {"type": "custom", "name": "apply_patch"}]}]}, [], False)
    assert info.value.param == "tools[0].tools[0]"


# Two namespaces with a function of the same name, and a plain function of that name too.
NAMESPACED_TOOLS = [
    {"type": "function", "name": "wait", "parameters": {"type": "object"}},
    {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents.",
     "tools": [{"type": "function", "name": "wait", "parameters": {"type": "object"}}]},
    {"type": "namespace", "name": "mcp__docs", "description": "Docs.",
     "tools": [{"type": "function", "name": "wait", "parameters": {"type": "object"}}]}]


def test_namespaced_functions_get_unique_chat_names_and_calls_carry_them_as_namespace():
    chat = wire.to_chat_body({"model": "m", "tools": NAMESPACED_TOOLS}, [], False)
    assert [t["function"]["name"] for t in chat["tools"]] == ["wait", "multi_agent_v1__wait", "mcp__docs__wait"]
    answer = {"choices": [{"finish_reason": "tool_calls", "message": {"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "mcp__docs__wait", "arguments": "{}"}},
        {"id": "c2", "type": "function", "function": {"name": "wait", "arguments": "{}"}}]}}]}
    output, status, _ = wire.from_chat_response(answer, wire.namespaced_functions(NAMESPACED_TOOLS))
    assert [(i.get("namespace"), i["name"], i["call_id"]) for i in output] == [
        ("mcp__docs", "wait", "c1"), (None, "wait", "c2")]
    assert "namespace" not in output[1]  # a plain function's call stays as it was
    parsed = construct_type(type_=Response, value=wire.response_object({}, "resp_t", 0, "m", status, output,
                                                                        None, "p"))
    assert parsed.output[0].namespace == "mcp__docs"


def test_a_namespaced_call_sent_back_as_input_goes_upstream_under_its_chat_name():
    items = [{"type": "function_call", "call_id": "c1", "name": "wait", "namespace": "multi_agent_v1",
              "arguments": "{}"},
             {"type": "function_call_output", "call_id": "c1", "output": "done"}]
    [call, _] = wire.to_chat_messages(None, items)
    assert call["tool_calls"][0]["function"]["name"] == "multi_agent_v1__wait"


def test_a_streamed_namespaced_call_carries_its_namespace_in_every_item_event():
    translator = wire.StreamTranslator({"model": "m", "tools": NAMESPACED_TOOLS}, "resp_t", "m", "p")
    events = translator.start()
    events += translator.feed(chunk({"tool_calls": [{"index": 0, "id": "c1", "function": {
        "name": "multi_agent_v1__wait", "arguments": '{"s"'}}]}))
    events += translator.feed(chunk({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}))
    events += translator.feed(chunk({"tool_calls": [{"index": 1, "id": "c2", "function": {
        "name": "wait", "arguments": "{}"}}]}))
    events += translator.feed(chunk({}, "tool_calls"))
    events += translator.finish(None)
    items = [e["item"] for e in events if e["type"] in ("response.output_item.added", "response.output_item.done")]
    assert [(i.get("namespace"), i["name"]) for i in items] == [  # added, added, done, done
        ("multi_agent_v1", "wait"), (None, "wait"), ("multi_agent_v1", "wait"), (None, "wait")]
    done = [e["name"] for e in events if e["type"] == "response.function_call_arguments.done"]
    assert done == ["wait", "wait"]
    final = sdk_final(events)
    assert [(c.namespace, c.name, c.arguments) for c in final.output] == [
        ("multi_agent_v1", "wait", '{"s":1}'), (None, "wait", "{}")]


def test_a_namespaced_name_too_long_for_a_provider_is_cut_uniquely_and_still_mapped_back():
    tools = [{"type": "namespace", "name": "mcp__" + "x" * 50, "tools": [
        {"type": "function", "name": f"read_{kind}_file"} for kind in ("text", "json")]}]
    names = [t["function"]["name"] for t in wire.to_chat_body({"model": "m", "tools": tools}, [], False)["tools"]]
    assert all(len(name) == 64 for name in names) and names[0] != names[1]
    answer = {"choices": [{"message": {"tool_calls": [{"id": "c1", "function": {"name": names[1]}}]}}]}
    [call], _, _ = wire.from_chat_response(answer, wire.namespaced_functions(tools))
    assert (call["namespace"], call["name"]) == ("mcp__" + "x" * 50, "read_json_file")
