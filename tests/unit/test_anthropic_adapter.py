"""providers.anthropic: OpenAI chat requests to Anthropic's Messages API and back, without a network,
against the bodies recorded from the real API."""

import re
from pathlib import Path

import orjson
import pytest

from providers.anthropic import (
    StreamParser,
    build_chat_request,
    build_models_request,
    parse_chat_response,
    parse_models,
)
from providers.anthropic.request import adaptive_effort, takes_adaptive_thinking
from providers.base import SSEDecoder, StreamError, Target, UpstreamError, error_message

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "recorded" / "anthropic"
TARGET = Target(id=1, name="anthropic", provider_type="anthropic", wire="anthropic",
                base_url="https://api.anthropic.com/v1", api_key="sk-ant-test")
HELLO = [{"role": "user", "content": "Hello"}]
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def build(model="claude-sonnet-4-20250514", stream=False, **body) -> dict:
    body.setdefault("messages", HELLO)
    request = build_chat_request({"model": model, **body}, TARGET, model, stream)
    return orjson.loads(request.body)


def recorded(name: str) -> bytes:
    return (RECORDED / name).read_bytes()


# -- the request: URL, headers, plain fields ---------------------------------------------------------

def test_url_method_and_headers():
    request = build_chat_request({"model": "m", "messages": HELLO}, TARGET, "claude-x", False)
    assert (request.method, request.url) == ("POST", "https://api.anthropic.com/v1/messages")
    assert request.headers["x-api-key"] == "sk-ant-test"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    streaming = build_chat_request({"model": "m", "messages": HELLO, "stream": True}, TARGET, "claude-x", True)
    assert streaming.headers["accept"] == "text/event-stream"
    assert orjson.loads(streaming.body)["stream"] is True


def test_minimal_body_uses_the_upstream_model_and_the_default_max_tokens(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_DEFAULT_MAX_TOKENS", raising=False)
    body = build_chat_request({"model": "anthropic/claude", "messages": HELLO, "provider": "anthropic"}, TARGET,
                              "claude-sonnet-4-20250514", False)
    assert orjson.loads(body.body) == {"model": "claude-sonnet-4-20250514", "messages": HELLO, "max_tokens": 4096}


def test_default_max_tokens_is_read_at_call_time(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_DEFAULT_MAX_TOKENS", "1234")
    assert build()["max_tokens"] == 1234
    monkeypatch.setenv("ANTHROPIC_DEFAULT_MAX_TOKENS", "777")
    assert build()["max_tokens"] == 777


def test_max_tokens_and_max_completion_tokens():
    assert build(max_tokens=100)["max_tokens"] == 100
    assert build(max_completion_tokens=200)["max_tokens"] == 200
    assert build(max_tokens=100, max_completion_tokens=200)["max_tokens"] == 200


def test_sampling_stop_user_and_stream_fields():
    body = build(temperature=0.7, top_p=0.9, top_k=40, stop="END", user="user-42")
    assert (body["temperature"], body["top_p"], body["top_k"]) == (0.7, 0.9, 40)
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "user-42"}
    assert "stream" not in body and "user" not in body and "stop" not in body
    assert build(stop=["a", "b"])["stop_sequences"] == ["a", "b"]
    assert "stop_sequences" not in build(stop=None)
    assert build(stream=True)["stream"] is True


def test_more_than_one_choice_is_refused():
    with pytest.raises(UpstreamError) as info:
        build(n=2)
    assert (info.value.status, info.value.param) == (400, "n")
    assert "n" not in build(n=1)


# -- messages ------------------------------------------------------------------------------------------

def test_system_and_developer_messages_become_the_top_level_system():
    body = build(messages=[{"role": "system", "content": "You are terse."},
                           {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
                           {"role": "user", "content": "Hi"}])
    assert body["system"] == "You are terse.\n\nAnswer in French."
    assert body["messages"] == [{"role": "user", "content": "Hi"}]


def test_system_parts_with_cache_control_stay_blocks():
    body = build(messages=[{"role": "system", "content": [
        {"type": "text", "text": "Long policy", "cache_control": {"type": "ephemeral"}}]}, *HELLO])
    assert body["system"] == [{"type": "text", "text": "Long policy", "cache_control": {"type": "ephemeral"}}]


def test_no_system_field_without_system_messages():
    assert "system" not in build()


def test_assistant_tool_calls_become_tool_use_blocks_and_tool_results_merge():
    body = build(messages=[
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "21C"}]},
        {"role": "assistant", "content": "Paris 18C, Rome 21C."},
        {"role": "user", "content": "And Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_3", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "call_3", "content": "3C"},
    ])
    assert body["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "21C"}]}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Paris 18C, Rome 21C."}]},
        {"role": "user", "content": "And Oslo?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_3", "name": "get_weather", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_3", "content": "3C"}]},
    ]


@pytest.mark.parametrize("arguments", ["[1, 2]", "{not json", '"text"'])
def test_tool_call_arguments_must_be_a_json_object(arguments):
    with pytest.raises(UpstreamError) as info:
        build(messages=[*HELLO, {"role": "assistant", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}]}])
    assert info.value.status == 400
    assert info.value.param == "messages[1].tool_calls[0].function.arguments"


def test_images_data_urls_become_base64_and_http_urls_url_sources():
    body = build(messages=[{"role": "user", "content": [
        {"type": "text", "text": "What differs?"},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRg=="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/b.png", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "http://example.com/c.gif"}},
    ]}])
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "What differs?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQSkZJRg=="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/b.png"}},
        {"type": "image", "source": {"type": "url", "url": "http://example.com/c.gif"}},
    ]


@pytest.mark.parametrize("url", ["ftp://example.com/a.png", "data:image/png,rawbytes"])
def test_unusable_image_urls_are_a_400(url):
    with pytest.raises(UpstreamError) as info:
        build(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}])
    assert (info.value.status, info.value.param) == (400, "messages[0].content")


def test_input_audio_is_a_400_naming_the_message():
    with pytest.raises(UpstreamError) as info:
        build(messages=[{"role": "system", "content": "x"}, {"role": "user", "content": [
            {"type": "text", "text": "Transcribe"},
            {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}]}])
    assert info.value.status == 400
    assert info.value.param == "messages[1].content"
    assert "audio" in info.value.message


def test_unknown_role_is_a_400():
    with pytest.raises(UpstreamError) as info:
        build(messages=[{"role": "function", "name": "f", "content": "x"}])
    assert (info.value.status, info.value.param) == (400, "messages[0].role")


# -- tools ---------------------------------------------------------------------------------------------

def test_tools_become_name_description_input_schema():
    body = build(tools=[WEATHER_TOOL, {"type": "function", "function": {"name": "now"}}])
    assert body["tools"] == [
        {"name": "get_weather", "description": "Weather for a city",
         "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in body


@pytest.mark.parametrize("choice, expected", [
    ("auto", {"type": "auto"}),
    ("required", {"type": "any"}),
    ({"type": "function", "function": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"}),
])
def test_tool_choice(choice, expected):
    body = build(tools=[WEATHER_TOOL], tool_choice=choice)
    assert body["tool_choice"] == expected
    assert build(tools=[WEATHER_TOOL], tool_choice=choice, parallel_tool_calls=False)["tool_choice"] == {
        **expected, "disable_parallel_tool_use": True}


def test_tool_choice_none_drops_the_tools():
    body = build(tools=[WEATHER_TOOL], tool_choice="none", parallel_tool_calls=False)
    assert "tools" not in body and "tool_choice" not in body


def test_parallel_tool_calls_false_without_tool_choice():
    assert build(tools=[WEATHER_TOOL], parallel_tool_calls=False)["tool_choice"] == {
        "type": "auto", "disable_parallel_tool_use": True}
    assert "tool_choice" not in build(tools=[WEATHER_TOOL], parallel_tool_calls=True)


# -- reasoning -----------------------------------------------------------------------------------------

ADAPTIVE = ["claude-opus-4-6", "claude-sonnet-4-6", "claude-opus-4-7", "claude-sonnet-4-6-20260217",
            "claude-opus-5", "claude-sonnet-5-20270101", "claude-opus-5-5", "claude-haiku-5"]
BUDGETED = ["claude-sonnet-4-20250514", "claude-opus-4-1-20250805", "claude-sonnet-4-5-20250929",
            "claude-haiku-4-5", "claude-3-7-sonnet-20250219", "claude-opus-4-5"]


@pytest.mark.parametrize("model", ADAPTIVE)
def test_adaptive_models(model):
    assert takes_adaptive_thinking(model)
    body = build(model=model, reasoning={"effort": "medium"}, max_tokens=500)
    assert body["thinking"] == {"type": "adaptive"}
    assert body["output_config"] == {"effort": "medium"}
    assert body["max_tokens"] == 500
    assert "reasoning" not in body


@pytest.mark.parametrize("model", BUDGETED)
def test_older_models_think_with_a_budget(model):
    assert not takes_adaptive_thinking(model)
    body = build(model=model, reasoning={"effort": "medium"}, max_tokens=500)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 10000}
    assert body["max_tokens"] == 10500
    assert "output_config" not in body


@pytest.mark.parametrize("effort, budget", [("low", 5000), ("medium", 10000), ("high", 20000), ("xhigh", 20000),
                                            ("max", 20000)])
def test_budgets_raise_max_tokens_by_the_budget(effort, budget, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_DEFAULT_MAX_TOKENS", raising=False)
    body = build(model="claude-sonnet-4-20250514", reasoning_effort=effort)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] == budget + 4096
    assert build(model="claude-sonnet-4-20250514", reasoning_effort=effort, max_completion_tokens=100)[
        "max_tokens"] == budget + 100


def test_thinking_drops_a_temperature_other_than_one():
    assert "temperature" not in build(model="claude-sonnet-4-20250514", reasoning={"effort": "low"}, temperature=0.2)
    assert build(model="claude-sonnet-4-20250514", reasoning={"effort": "low"}, temperature=1)["temperature"] == 1
    assert "temperature" not in build(model="claude-opus-4-6", reasoning={"effort": "low"}, temperature=0)
    # Without reasoning the temperature goes through untouched.
    assert build(model="claude-sonnet-4-20250514", temperature=0.2)["temperature"] == 0.2


@pytest.mark.parametrize("model, effort, expected", [
    ("claude-opus-4-6", "low", "low"),
    ("claude-opus-4-6", "high", "high"),
    ("claude-opus-4-6", "max", "max"),
    ("claude-sonnet-4-6", "xhigh", "high"),  # 4.6 has no xhigh: never spend more than asked
    ("claude-opus-4-7", "xhigh", "xhigh"),
    ("claude-sonnet-5", "xhigh", "xhigh"),
    ("claude-opus-5", "max", "max"),
    ("claude-opus-4-6", "minimal", "low"),
])
def test_adaptive_effort_levels(model, effort, expected):
    assert adaptive_effort(effort, model) == expected
    assert build(model=model, reasoning_effort=effort)["output_config"] == {"effort": expected}


def test_reasoning_object_wins_over_the_flat_field_and_none_means_no_thinking():
    body = build(model="claude-opus-4-6", reasoning={"effort": "low"}, reasoning_effort="high")
    assert body["output_config"] == {"effort": "low"}
    for body in (build(model="claude-opus-4-6", reasoning_effort="none"), build(model="claude-opus-4-6"),
                 build(model="claude-sonnet-4-20250514", reasoning={"summary": "auto"})):
        assert "thinking" not in body and "output_config" not in body and "reasoning_effort" not in body


# -- models --------------------------------------------------------------------------------------------

def test_models_request_and_listing():
    request = build_models_request(TARGET)
    assert request.method == "GET"
    # One page of up to 1000 (Anthropic pages by 20 by default), so no model goes missing.
    assert request.url == "https://api.anthropic.com/v1/models?limit=1000"
    assert request.headers["x-api-key"] == "sk-ant-test"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.body is None
    raw = orjson.dumps({"data": [{"type": "model", "id": "claude-opus-4-6", "display_name": "Claude Opus 4.6"},
                                 {"type": "model", "id": "claude-sonnet-4-20250514"}],
                        "has_more": False, "first_id": "claude-opus-4-6", "last_id": "claude-sonnet-4-20250514"})
    assert parse_models(raw) == ["claude-opus-4-6", "claude-sonnet-4-20250514"]


def test_anthropic_error_bodies_give_their_message():
    raw = b'{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}'
    assert error_message(raw, 400)[0] == "max_tokens: Field required"


# -- the response ----------------------------------------------------------------------------------------

def test_parse_recorded_text_message():
    fixture = orjson.loads(recorded("messages.json"))
    data, usage = parse_chat_response(recorded("messages.json"))
    assert data["id"] == fixture["id"]
    assert data["object"] == "chat.completion"
    assert isinstance(data["created"], int)
    assert data["model"] == fixture["model"] == "claude-sonnet-4-20250514"
    assert data["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "Hello World"},
                                "finish_reason": "stop", "logprobs": None}]
    raw = fixture["usage"]
    prompt, completion = raw["input_tokens"], raw["output_tokens"]
    assert data["usage"] == {"prompt_tokens": prompt, "completion_tokens": completion,
                             "total_tokens": prompt + completion, "prompt_tokens_details": {"cached_tokens": 0},
                             "raw_usage": raw}
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (14, 5, 19)
    assert (usage.cached_tokens, usage.reasoning_tokens) == (0, 0)


def test_parse_recorded_tool_use_message():
    fixture = orjson.loads(recorded("messages_with_tools.json"))
    data, usage = parse_chat_response(recorded("messages_with_tools.json"))
    choice = data["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "I'll check the current weather in Paris for you."
    tool_use = fixture["content"][1]
    assert choice["message"]["tool_calls"] == [{"id": tool_use["id"], "type": "function", "function": {
        "name": "get_weather", "arguments": '{"location":"Paris"}'}}]
    assert orjson.loads(choice["message"]["tool_calls"][0]["function"]["arguments"]) == tool_use["input"]
    raw = fixture["usage"]
    prompt = raw["input_tokens"] + raw["cache_read_input_tokens"] + raw["cache_creation_input_tokens"]
    assert data["usage"]["prompt_tokens"] == prompt == 380
    assert data["usage"]["completion_tokens"] == raw["output_tokens"] == 65
    assert data["usage"]["total_tokens"] == 445
    assert data["usage"]["raw_usage"] == raw
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (380, 65, 445)


def test_usage_counts_cache_reads_and_writes_as_prompt_tokens():
    raw = orjson.dumps({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-opus-4-6",
                        "content": [{"type": "thinking", "thinking": "Let me think.", "signature": "sig"},
                                    {"type": "text", "text": "Part one. "}, {"type": "text", "text": "Part two."}],
                        "stop_reason": "max_tokens",
                        "usage": {"input_tokens": 10, "cache_read_input_tokens": 100,
                                  "cache_creation_input_tokens": 20, "output_tokens": 50,
                                  "output_tokens_details": {"thinking_tokens": 30}}})
    data, usage = parse_chat_response(raw)
    message = data["choices"][0]["message"]
    assert message == {"role": "assistant", "content": "Part one. Part two.", "reasoning_content": "Let me think."}
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["usage"]["prompt_tokens"] == 130
    assert data["usage"]["prompt_tokens_details"] == {"cached_tokens": 100}
    assert data["usage"]["completion_tokens_details"] == {"reasoning_tokens": 30}
    assert data["usage"]["total_tokens"] == 180
    assert (usage.prompt_tokens, usage.cached_tokens, usage.reasoning_tokens, usage.total_tokens) == (130, 100, 30,
                                                                                                      180)


@pytest.mark.parametrize("stop_reason, finish", [("end_turn", "stop"), ("stop_sequence", "stop"),
                                                 ("max_tokens", "length"), ("tool_use", "tool_calls"),
                                                 ("refusal", "content_filter"), ("pause_turn", "stop")])
def test_stop_reasons(stop_reason, finish):
    raw = orjson.dumps({"id": "m", "model": "c", "content": [{"type": "text", "text": "x"}],
                        "stop_reason": stop_reason, "usage": {"input_tokens": 1, "output_tokens": 1}})
    assert parse_chat_response(raw)[0]["choices"][0]["finish_reason"] == finish


def test_an_error_body_with_status_200_is_an_upstream_error():
    with pytest.raises(UpstreamError) as info:
        parse_chat_response(b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}')
    assert (info.value.status, info.value.message, info.value.code) == (529, "Overloaded", "overloaded_error")


# -- the stream ------------------------------------------------------------------------------------------

def run_stream(raw: bytes, size: int | None = None, model="the-requested-model") -> tuple[list[dict], StreamParser]:
    decoder, parser, chunks = SSEDecoder(), StreamParser(model), []
    size = size or len(raw)
    for start in range(0, len(raw), size):
        for event, data in decoder.feed(raw[start:start + size]):
            chunks.extend(parser.feed(event, data))
    for event, data in decoder.close():
        chunks.extend(parser.feed(event, data))
    chunks.extend(parser.close())
    return chunks, parser


def recorded_text(raw: bytes) -> str:
    """The text the recording streams, read straight off its text_delta events."""
    return "".join(orjson.loads(m.group(1))["delta"]["text"]
                   for m in re.finditer(rb"^data: (.*text_delta.*)$", raw, re.MULTILINE))


def without_created(chunks):
    return [{k: v for k, v in chunk.items() if k != "created"} for chunk in chunks]


def test_recorded_stream_gives_the_same_chunks_at_any_chunk_size():
    raw = recorded("messages_stream.txt")
    results = [run_stream(raw, size) for size in (1, 13, None)]
    first_chunks, _ = results[0]
    for chunks, parser in results:
        assert without_created(chunks) == without_created(first_chunks)
        assert parser.complete is True
        assert (parser.usage.prompt_tokens, parser.usage.completion_tokens, parser.usage.total_tokens) == (10, 5, 15)


def test_recorded_stream_translation():
    raw = recorded("messages_stream.txt")
    chunks, parser = run_stream(raw, 13)
    assert recorded_text(raw) == "Hello World"
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "Hello World"
    assert chunks[0]["choices"] == [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                     "finish_reason": None, "logprobs": None}]
    assert {c["id"] for c in chunks} == {"msg_01SJmPi7XXP8qscFQiHPR9oy"}
    assert {c["model"] for c in chunks} == {"claude-sonnet-4-20250514"}
    assert len({c["created"] for c in chunks}) == 1
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    finish, usage_chunk = chunks[-2], chunks[-1]
    assert finish["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop", "logprobs": None}]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["prompt_tokens"] == 10
    assert usage_chunk["usage"]["completion_tokens"] == 5
    assert usage_chunk["usage"]["total_tokens"] == 15
    assert usage_chunk["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}
    assert usage_chunk["usage"]["raw_usage"]["output_tokens"] == 5
    assert usage_chunk["usage"]["raw_usage"]["service_tier"] == "standard"
    assert sum(1 for c in chunks if "usage" in c) == 1
    assert parser.complete is True


def test_stream_without_message_stop_is_not_complete():
    raw = recorded("messages_stream.txt")
    cut = raw[:raw.index(b"event: message_stop")]
    chunks, parser = run_stream(cut)
    assert parser.complete is False
    assert parser.usage is not None


def sse(*events) -> bytes:
    return b"".join(b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"
                    for name, payload in events)


def block_delta(index, delta):
    return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}


TOOL_STREAM = sse(
    ("message_start", {"type": "message_start", "message": {
        "id": "msg_tools", "type": "message", "role": "assistant", "model": "claude-opus-4-6", "content": [],
        "usage": {"input_tokens": 50, "cache_read_input_tokens": 30, "cache_creation_input_tokens": 5,
                  "output_tokens": 1}}}),
    ("content_block_start", {"type": "content_block_start", "index": 0,
                             "content_block": {"type": "thinking", "thinking": ""}}),
    block_delta(0, {"type": "thinking_delta", "thinking": "Two cities."}),
    block_delta(0, {"type": "signature_delta", "signature": "EqQBCgIYAhIM"}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("content_block_start", {"type": "content_block_start", "index": 1,
                             "content_block": {"type": "text", "text": ""}}),
    block_delta(1, {"type": "text_delta", "text": "Checking both."}),
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    ("ping", {"type": "ping"}),
    ("content_block_start", {"type": "content_block_start", "index": 2, "content_block": {
        "type": "tool_use", "id": "toolu_A", "name": "get_weather", "input": {}}}),
    block_delta(2, {"type": "input_json_delta", "partial_json": ""}),
    block_delta(2, {"type": "input_json_delta", "partial_json": '{"city": "Pa'}),
    block_delta(2, {"type": "input_json_delta", "partial_json": 'ris"}'}),
    ("content_block_stop", {"type": "content_block_stop", "index": 2}),
    ("content_block_start", {"type": "content_block_start", "index": 3, "content_block": {
        "type": "tool_use", "id": "toolu_B", "name": "get_weather", "input": {}}}),
    block_delta(3, {"type": "input_json_delta", "partial_json": '{"city": "Rome"}'}),
    ("content_block_stop", {"type": "content_block_stop", "index": 3}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                       "usage": {"output_tokens": 80}}),
    ("message_stop", {"type": "message_stop"}),
)


def test_stream_with_thinking_and_tool_calls():
    chunks, parser = run_stream(TOOL_STREAM, 7)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"reasoning_content": "Two cities."},
        {"content": "Checking both."},
        {"tool_calls": [{"index": 0, "id": "toolu_A", "type": "function",
                         "function": {"name": "get_weather", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Pa'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": 'ris"}'}}]},
        {"tool_calls": [{"index": 1, "id": "toolu_B", "type": "function",
                         "function": {"name": "get_weather", "arguments": ""}}]},
        {"tool_calls": [{"index": 1, "function": {"arguments": '{"city": "Rome"}'}}]},
        {},
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    usage = chunks[-1]["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (85, 80, 165)
    assert usage["prompt_tokens_details"] == {"cached_tokens": 30}
    assert usage["raw_usage"] == {"input_tokens": 50, "cache_read_input_tokens": 30,
                                  "cache_creation_input_tokens": 5, "output_tokens": 80}
    assert (parser.usage.prompt_tokens, parser.usage.cached_tokens, parser.usage.completion_tokens) == (85, 30, 80)
    assert parser.complete is True
    assert {c["id"] for c in chunks} == {"msg_tools"}


def test_error_event_mid_stream_raises_stream_error():
    raw = sse(
        ("message_start", {"type": "message_start", "message": {"id": "msg_e", "model": "claude-x", "content": [],
                                                                "usage": {"input_tokens": 3, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        block_delta(0, {"type": "text_delta", "text": "Hel"}),
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    )
    decoder, parser, chunks = SSEDecoder(), StreamParser("claude-x"), []
    with pytest.raises(StreamError) as info:
        for event, data in decoder.feed(raw):
            chunks.extend(parser.feed(event, data))
    assert (info.value.message, info.value.code) == ("Overloaded", "overloaded_error")
    assert [c["choices"][0]["delta"].get("content") for c in chunks] == ["", "Hel"]
    assert parser.complete is False
