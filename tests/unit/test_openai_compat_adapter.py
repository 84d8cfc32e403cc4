"""providers.openai_compat: the OpenAI wire format, without a network, against the bodies recorded from
OpenAI, Groq, xAI and Kimi Code (tests/fixtures/recorded/)."""

from pathlib import Path

import orjson
import pytest

from providers.base import SSEDecoder, StreamError, Target, Usage
from providers.openai_compat import (
    StreamParser,
    build_chat_request,
    build_models_request,
    parse_chat_response,
    parse_models,
)

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "recorded"
HELLO = [{"role": "user", "content": "Hello"}]


def target(provider_type="groq", api_key="sk-test", base_url="https://api.example.com/v1") -> Target:
    return Target(id=1, name=provider_type, provider_type=provider_type, wire="openai_compat", base_url=base_url,
                  api_key=api_key)


def recorded(path: str) -> bytes:
    return (RECORDED / path).read_bytes()


# -- non-streaming responses -----------------------------------------------------------------------

# file -> (prompt, completion, total, cached, reasoning), and the provider's own usage keys (if any)
CHAT_RECORDINGS = {
    "openai/chat_completion.json": ((17, 4, 21, 0, 0), None),
    "openai/chat_completion_reasoning.json": ((13, 85, 98, 0, 64), None),
    "openai/chat_json_mode.json": ((14, 13, 27, 0, 0), None),
    "openai/chat_multi_turn.json": ((47, 15, 62, 0, 0), None),
    "openai/chat_multimodal.json": ((14183, 28, 14211, 0, 0), None),
    "openai/chat_with_params.json": ((27, 13, 40, 0, 0), None),
    "openai/chat_with_tools.json": ((47, 14, 61, 0, 0), None),
    "groq/chat_completion.json": ((38, 4, 42, 0, 0), {"queue_time", "prompt_time", "completion_time", "total_time"}),
    "groq/chat_with_params.json": ((43, 12, 55, 0, 0), {"queue_time", "prompt_time", "completion_time",
                                                         "total_time"}),
    "groq/chat_with_tools.json": ((203, 14, 217, 0, 0), {"queue_time", "prompt_time", "completion_time",
                                                          "total_time"}),
    # xAI: completion_tokens leaves out the reasoning tokens (total = prompt + completion + reasoning).
    "xai/chat_completion.json": ((10, 35, 420, 3, 375), {"num_sources_used", "cost_in_usd_ticks"}),
    "xai/chat_with_params.json": ((19, 6, 198, 4, 173), {"num_sources_used", "cost_in_usd_ticks"}),
    # Kimi repeats cached_tokens at the top level of usage.
    "kimicode/chat_completion.json": ((18, 42, 60, 18, 0), {"cached_tokens"}),
}


def test_every_recorded_chat_completion_is_covered():
    found = {f"{p.parent.name}/{p.name}" for provider in ("openai", "groq", "xai", "kimicode")
             for p in (RECORDED / provider).glob("chat*.json")}
    assert found == set(CHAT_RECORDINGS)


@pytest.mark.parametrize("path", sorted(CHAT_RECORDINGS))
def test_parse_chat_response_on_recordings(path):
    (prompt, completion, total, cached, reasoning), extra_keys = CHAT_RECORDINGS[path]
    raw = recorded(path)
    original = orjson.loads(raw)

    data, usage = parse_chat_response(raw)

    ticks = original["usage"].get("cost_in_usd_ticks")  # xAI says what it charged, in 1e-10 USD
    assert usage == Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total,
                          cached_tokens=cached, reasoning_tokens=reasoning,
                          reported_cost=f"{ticks / 10**10:.10f}" if ticks is not None else None)
    # Everything but usage passes through untouched (choices, ids, the provider's own fields).
    assert {k: v for k, v in data.items() if k != "usage"} == {k: v for k, v in original.items() if k != "usage"}
    if extra_keys is None:
        assert "raw_usage" not in data["usage"]
        assert data["usage"] == original["usage"]
    else:
        assert extra_keys <= set(data["usage"]["raw_usage"])
        assert data["usage"]["raw_usage"] == original["usage"]
        assert {k: v for k, v in data["usage"].items() if k != "raw_usage"} == original["usage"]
    choice = data["choices"][0]
    assert choice["finish_reason"] in ("stop", "tool_calls")
    if choice["finish_reason"] == "tool_calls":
        call = choice["message"]["tool_calls"][0]
        assert call["type"] == "function" and orjson.loads(call["function"]["arguments"]) is not None


def test_parse_chat_response_without_usage():
    data, usage = parse_chat_response(b'{"id": "x", "choices": [{"index": 0, "message": {"content": "hi"}}]}')
    assert usage is None and "usage" not in data


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"text"', b"null"])
def test_parse_chat_response_rejects_a_non_object(raw):
    with pytest.raises(ValueError):
        parse_chat_response(raw)


def test_parse_chat_response_rejects_invalid_json():
    with pytest.raises(ValueError):
        parse_chat_response(b'{"choices": [')


def test_usage_with_ill_typed_numbers_counts_zero():
    _, usage = parse_chat_response(orjson.dumps({"usage": {"prompt_tokens": "12", "completion_tokens": True,
                                                           "prompt_tokens_details": None}}))
    assert usage == Usage()


def test_total_is_derived_when_missing():
    _, usage = parse_chat_response(orjson.dumps({"usage": {"prompt_tokens": 5, "completion_tokens": 7}}))
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (5, 7, 12)


# -- streams -----------------------------------------------------------------------------------------

CHAT_STREAMS = {
    # provider -> (chunks, text, reasoning text length, usage or None)
    "openai": (6, "Hello, World!", 0, None),
    "groq": (5, "Hello World!", 0, Usage(prompt_tokens=38, completion_tokens=4, total_tokens=42)),
    "kimicode": (32, "Hello, World!", 121, Usage(prompt_tokens=18, completion_tokens=32, total_tokens=50,
                                                 cached_tokens=18)),
    "xai": (293, None, 1166, None),
}
STREAM_FILES = sorted(str(p.relative_to(RECORDED.resolve())) for p in RECORDED.resolve().glob("*/*_stream.txt"))


def split(data: bytes, size: int | None) -> list[bytes]:
    if size is None:
        return [data]
    return [data[i:i + size] for i in range(0, len(data), size)]


def decode(data: bytes, size: int | None) -> list[tuple[str | None, bytes]]:
    decoder = SSEDecoder()
    events = []
    for piece in split(data, size):
        events.extend(decoder.feed(piece))
    events.extend(decoder.close())
    return events


def parse_stream(provider: str, size: int | None, model="m") -> tuple[list[dict], StreamParser]:
    parser = StreamParser(model)
    decoder = SSEDecoder()
    chunks = []
    for piece in split(recorded(f"{provider}/chat_completion_stream.txt"), size):
        for event, data in decoder.feed(piece):
            chunks.extend(parser.feed(event, data))
    for event, data in decoder.close():
        chunks.extend(parser.feed(event, data))
    chunks.extend(parser.close())
    return chunks, parser


@pytest.mark.parametrize("path", STREAM_FILES)
def test_sse_decoder_gives_the_same_events_whatever_the_chunking(path):
    data = (RECORDED / path).read_bytes()
    whole = decode(data, None)
    assert whole, path
    assert len(whole) == data.count(b"\ndata:") + data.startswith(b"data:")
    for size in (1, 2, 7, 64):
        assert decode(data, size) == whole, (path, size)
    for event, payload in whole:
        assert payload == b"[DONE]" or isinstance(orjson.loads(payload), dict)
        assert not payload.startswith(b" ")
        if path.startswith("anthropic/") or "responses" in path:  # these name their events
            assert event == orjson.loads(payload)["type"]
        else:
            assert event is None


@pytest.mark.parametrize("provider", sorted(CHAT_STREAMS))
def test_stream_parser_on_recordings(provider):
    expected_count, text, reasoning_chars, usage = CHAT_STREAMS[provider]
    whole, parser = parse_stream(provider, None)

    assert len(whole) == expected_count
    assert parser.complete and parser.done and parser.finished
    assert parser.usage == usage
    relayed = "".join(c["choices"][0]["delta"].get("content") or "" for c in whole if c.get("choices"))
    if text is not None:
        assert relayed == text
    else:
        assert relayed.startswith("Hello World!")
    reasoning = "".join(c["choices"][0]["delta"].get("reasoning_content") or "" for c in whole if c.get("choices"))
    assert len(reasoning) == reasoning_chars
    assert all(c["object"] == "chat.completion.chunk" for c in whole)
    assert [c for c in whole if c.get("choices") and c["choices"][0].get("finish_reason")][-1][
        "choices"][0]["finish_reason"] == "stop"

    for size in (1, 7):
        chunks, again = parse_stream(provider, size)
        assert chunks == whole, (provider, size)
        assert (again.usage, again.complete) == (parser.usage, parser.complete)


def test_groq_stream_keeps_its_own_usage_fields_under_raw_usage():
    chunks, _ = parse_stream("groq", None)
    usage = chunks[-1]["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (38, 4)
    assert usage["raw_usage"]["queue_time"] == pytest.approx(0.090321431)
    assert "x_groq" in chunks[-1]  # the provider's own fields pass through


def test_kimi_usage_inside_the_choice_is_reported_at_the_top():
    chunks, parser = parse_stream("kimicode", None)
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["usage"]["prompt_tokens"] == 18 and last["usage"]["completion_tokens"] == 32
    assert parser.usage.cached_tokens == 18


def test_openai_stream_chunks_are_the_upstreams_unchanged():
    raw = recorded("openai/chat_completion_stream.txt")
    upstream = [orjson.loads(payload) for _, payload in decode(raw, None) if payload != b"[DONE]"]
    chunks, _ = parse_stream("openai", 7)
    assert chunks == upstream


def test_stream_error_event_raises():
    parser = StreamParser("m")
    parser.feed(None, b'{"choices": [{"index": 0, "delta": {"content": "Hi"}}]}')
    with pytest.raises(StreamError) as caught:
        parser.feed(None, b'{"error": {"message": "overloaded", "type": "server_error"}}')
    assert caught.value.message == "overloaded"
    assert not parser.complete


def test_stream_error_as_a_string_raises():
    with pytest.raises(StreamError) as caught:
        StreamParser().feed(None, b'{"error": "upstream went away"}')
    assert caught.value.message == "upstream went away"


def test_stream_that_ends_early_is_not_complete():
    parser = StreamParser("m")
    chunks = parser.feed(None, b'{"choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": null}]}')
    assert len(chunks) == 1 and parser.close() == []
    assert not parser.complete and parser.usage is None


def test_finish_reason_without_done_is_complete():
    parser = StreamParser("m")
    parser.feed(None, b'{"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}')
    assert parser.complete and parser.finished and not parser.done


def test_stream_ignores_non_object_events_and_rejects_garbage():
    parser = StreamParser("m")
    assert parser.feed(None, b"[1, 2]") == []
    with pytest.raises(ValueError):
        parser.feed(None, b"{not json")


# -- requests ----------------------------------------------------------------------------------------

def test_build_chat_request_forwards_the_body_with_the_upstream_model():
    body = {"model": "groq/llama-3.3-70b-versatile", "provider": "groq", "messages": HELLO, "temperature": 0.2,
            "logit_bias": {"1": -5}, "x_custom": [1]}
    request = build_chat_request(body, target(), "llama-3.3-70b-versatile", False)
    assert (request.method, request.url) == ("POST", "https://api.example.com/v1/chat/completions")
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    sent = orjson.loads(request.body)
    assert sent == {"model": "llama-3.3-70b-versatile", "messages": HELLO, "temperature": 0.2,
                    "logit_bias": {"1": -5}, "x_custom": [1]}
    assert body["model"] == "groq/llama-3.3-70b-versatile" and body["provider"] == "groq"  # not mutated


@pytest.mark.parametrize("options, expected", [
    (None, {"include_usage": True}),
    ({"include_usage": False}, {"include_usage": True}),
    ({"include_usage": True, "other": 1}, {"include_usage": True, "other": 1}),
])
def test_streams_always_ask_for_usage(options, expected):
    body = {"model": "m", "messages": HELLO, "stream": True}
    if options is not None:
        body["stream_options"] = options
    request = build_chat_request(body, target(), "m", True)
    assert orjson.loads(request.body)["stream_options"] == expected
    assert request.headers["accept"] == "text/event-stream"


def test_no_key_no_authorization_header():
    request = build_chat_request({"model": "llama3", "messages": HELLO}, target("ollama", api_key=""), "llama3",
                                 False)
    assert "authorization" not in request.headers


def test_models_request_and_recorded_listings():
    request = build_models_request(target("xai", base_url="https://api.x.ai/v1"))
    assert (request.method, request.url, request.body) == ("GET", "https://api.x.ai/v1/models", None)
    assert "content-type" not in request.headers and request.headers["authorization"] == "Bearer sk-test"

    openai_ids = parse_models(recorded("openai/models.json"))
    assert len(openai_ids) == 119 and "gpt-4o-mini" in openai_ids
    assert "llama-3.3-70b-versatile" in parse_models(recorded("groq/models.json"))
    assert "grok-3-mini" in parse_models(recorded("xai/models.json"))
    assert parse_models(recorded("kimicode/models.json")) == ["kimi-for-coding"]


def test_parse_models_other_shapes():
    assert parse_models(b'{"models": [{"name": "llama3:8b"}, {"model": "qwen"}]}') == ["llama3:8b", "qwen"]
    assert parse_models(b'[{"id": "a"}, "junk", {"id": 3}]') == ["a"]
    assert parse_models(b'{"data": []}') == []


def test_openai_reasoning_models_take_system_messages_as_developer_ones_in_place():
    from providers.openai_compat.quirks import adapt_body

    messages = [{"role": "system", "content": "Top."}, {"role": "user", "content": "hi"},
                {"role": "system", "content": "Now be brief."}]
    body = {"model": "o3", "messages": messages}
    adapt_body(body, "openai", "o3")
    assert [m["role"] for m in body["messages"]] == ["developer", "user", "developer"]
    assert messages[0]["role"] == "system"  # the shared translated body is not changed
    other = {"model": "gpt-4o-mini", "messages": list(messages)}
    adapt_body(other, "openai", "gpt-4o-mini")
    adapt_body(groq := {"model": "o3", "messages": list(messages)}, "groq", "o3")
    assert [m["role"] for m in other["messages"]] == [m["role"] for m in groq["messages"]] == [
        "system", "user", "system"]
