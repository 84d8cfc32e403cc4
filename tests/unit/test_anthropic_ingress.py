"""providers.anthropic.ingress: Messages requests to chat bodies, chat answers and chunks back to Messages
and stream events, and the native request; without a network. The recorded Anthropic stream is also
replayed through the parser the native relay reads usage with."""

from pathlib import Path

import anthropic
import orjson
import pytest

from providers.anthropic import StreamParser
from providers.anthropic.ingress import EventWriter, estimate_messages, message_from_chat, native_request, to_chat
from providers.base import SSEDecoder, Target, UpstreamError, Usage

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "recorded" / "anthropic"
TARGET = Target(id=1, name="anthropic", provider_type="anthropic", wire="anthropic",
                base_url="https://api.anthropic.com/v1", api_key="sk-ant")


def test_native_request_changes_only_model_and_key_and_keeps_betas():
    body = {"model": "anthropic/claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
            "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}], "stream": True,
            "provider": "anthropic"}
    request = native_request(body, TARGET, "claude-x", {"anthropic-version": "2026-10-21",
                                                        "anthropic-beta": "a-1,b-2"})
    assert request.url == "https://api.anthropic.com/v1/messages"
    assert orjson.loads(request.body) == {**{k: v for k, v in body.items() if k != "provider"}, "model": "claude-x"}
    assert request.headers["x-api-key"] == "sk-ant"
    assert (request.headers["anthropic-version"], request.headers["anthropic-beta"]) == ("2026-10-21", "a-1,b-2")
    assert request.headers["accept"] == "text/event-stream"
    assert body["model"] == "anthropic/claude-x"  # the caller's body is not mutated
    counted = native_request({"model": "m", "messages": []}, TARGET, "claude-x", {}, "messages/count_tokens")
    assert counted.url.endswith("/messages/count_tokens")
    assert counted.headers["anthropic-version"] == "2023-06-01" and "anthropic-beta" not in counted.headers


def test_to_chat_translates_every_documented_field():
    body = {
        "model": "gpt-4o", "max_tokens": 64, "stop_sequences": ["X"], "temperature": 0.1, "top_p": 0.5, "top_k": 3,
        "metadata": {"user_id": "u"}, "system": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}],
        "tools": [{"name": "f", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}],
        "tool_choice": {"type": "tool", "name": "f"},
        "thinking": {"type": "enabled", "budget_tokens": 12000},
        "messages": [
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVB"}},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain"}}]},
            {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "x"},
                                              {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "is_error": True}]},
            {"role": "assistant", "content": "ok"},
        ],
    }
    assert to_chat(body, stream=True) == {
        "model": "gpt-4o", "max_tokens": 64, "stop": ["X"], "temperature": 0.1, "top_p": 0.5, "user": "u",
        "stream": True, "reasoning": {"effort": "high"},
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "messages": [
            {"role": "system", "content": "A\n\nB"},
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}},
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVB"}},
                {"type": "text", "text": "plain"}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "error"},
            {"role": "assistant", "content": "ok"},
        ],
    }


@pytest.mark.parametrize("thinking,extra,effort", [
    ({"type": "enabled", "budget_tokens": 1024}, {}, "low"),
    ({"type": "enabled", "budget_tokens": 10000}, {}, "medium"),
    ({"type": "adaptive"}, {"output_config": {"effort": "max"}}, "max"),
    ({"type": "adaptive"}, {}, "medium"),
    ({"type": "disabled"}, {}, None),
])
def test_thinking_becomes_a_reasoning_effort(thinking, extra, effort):
    chat = to_chat({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}],
                    "thinking": thinking, **extra}, stream=False)
    assert chat.get("reasoning") == ({"effort": effort} if effort else None)


@pytest.mark.parametrize("message", [
    {"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f_1"}}]},
    {"role": "user", "content": [{"type": "search_result", "source": "s", "title": "t", "content": []}]},
    {"role": "assistant", "content": [{"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}]},
])
def test_what_only_anthropic_takes_is_refused(message):
    with pytest.raises(UpstreamError) as info:
        to_chat({"model": "m", "max_tokens": 1, "messages": [message]}, stream=False)
    assert info.value.status == 400 and "only work" in info.value.message
    with pytest.raises(UpstreamError):
        to_chat({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}],
                 "tools": [{"type": "bash_20250124", "name": "bash"}]}, stream=False)


def test_message_from_chat_is_an_anthropic_message():
    data = {"id": "chatcmpl-1", "model": "gpt-4o", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "Let me look.", "reasoning_content": "Think.",
        "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "f", "arguments": '{"q": 2}'}}]}}]}
    message = message_from_chat(data, Usage(prompt_tokens=20, completion_tokens=5, total_tokens=25, cached_tokens=8),
                                "gpt-4o")
    parsed = anthropic.types.Message.model_validate(message)
    assert parsed.id.startswith("msg_") and parsed.stop_reason == "tool_use"
    assert [b.type for b in parsed.content] == ["thinking", "text", "tool_use"]
    assert parsed.content[2].input == {"q": 2}
    assert (parsed.usage.input_tokens, parsed.usage.cache_read_input_tokens, parsed.usage.output_tokens) == (12, 8, 5)
    length = message_from_chat({"choices": [{"finish_reason": "length", "message": {"content": "x"}}]}, None, "m")
    assert length["stop_reason"] == "max_tokens" and length["model"] == "m"


def events_of(raw: bytes) -> list[tuple[str, dict]]:
    decoder = SSEDecoder()
    return [(name, orjson.loads(data)) for name, data in decoder.feed(raw) + decoder.close()]


def test_event_writer_turns_chunks_into_anthropics_event_order():
    writer = EventWriter("gpt-4o")
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        {"choices": [{"index": 0, "delta": {"reasoning_content": "Hm."}}]},
        {"choices": [{"index": 0, "delta": {"content": "Hi"}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c1", "function": {
            "name": "f", "arguments": ""}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 9}},
    ]
    raw = b"".join(b"".join(writer.feed(chunk)) for chunk in chunks)
    raw += b"".join(writer.finish(Usage(prompt_tokens=9, completion_tokens=4, total_tokens=13)))
    events = events_of(raw)
    assert [name for name, _ in events] == [
        "message_start", "ping",
        "content_block_start", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop"]
    assert all(payload["type"] == name for name, payload in events)
    assert [e[1]["content_block"]["type"] for e in events if e[0] == "content_block_start"] == [
        "thinking", "text", "tool_use"]
    assert [e[1]["index"] for e in events if e[0] == "content_block_delta"] == [0, 1, 2, 2]
    assert events[-2][1] == {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                             "usage": {"input_tokens": 9, "output_tokens": 4, "cache_creation_input_tokens": 0,
                                       "cache_read_input_tokens": 0}}


def test_recorded_stream_feeds_the_native_usage_parser():
    raw = (RECORDED / "messages_stream.txt").read_bytes()
    parser = StreamParser("claude-sonnet-4-20250514")
    decoder = SSEDecoder()
    text = []
    for name, data in decoder.feed(raw) + decoder.close():
        for chunk in parser.feed(name, data):
            for choice in chunk.get("choices") or ():
                text.append(choice["delta"].get("content") or "")
    assert parser.complete and "".join(text) == "Hello World"
    assert (parser.usage.prompt_tokens, parser.usage.completion_tokens) == (10, 5)


def test_estimate_messages_counts_text_blocks_tools_and_system():
    body = {"system": [{"type": "text", "text": "sys"}], "tools": [{"name": "f", "input_schema": {}}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "a"},
                                                      {"type": "tool_result", "tool_use_id": "t", "content": "r"}]},
                         {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f",
                                                            "input": {"x": 1}}]}]}
    assert estimate_messages(body) == [
        {"role": "system", "content": "sys"}, {"role": "user", "content": "a\nr"},
        {"role": "assistant", "content": '{"x":1}'},
        {"role": "system", "content": '[{"name":"f","input_schema":{}}]'}]


def test_one_text_block_is_plain_content_and_several_keep_their_parts():
    def user(*texts):
        body = {"model": "m", "max_tokens": 1, "messages": [
            {"role": "user", "content": [{"type": "text", "text": t, "cache_control": {"type": "ephemeral"}}
                                         for t in texts]}]}
        return to_chat(body, stream=False)["messages"]

    assert user("Hi") == [{"role": "user", "content": "Hi"}]
    assert user("<reminder/>", "Hi") == [{"role": "user", "content": [{"type": "text", "text": "<reminder/>"},
                                                                      {"type": "text", "text": "Hi"}]}]


def test_mid_conversation_system_messages_stay_in_place_as_chat_system_messages():
    body = {"model": "m", "max_tokens": 5, "system": "Top.", "messages": [
        {"role": "user", "content": "Read a.txt"},
        {"role": "system", "content": [{"type": "text", "text": "<system-reminder>a</system-reminder>",
                                        "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {"p": "a"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "A"}]},
        {"role": "system", "content": "Reminder, cleared by the next user turn.", "clear_at": "next_user_message"},
        {"role": "system", "content": ""},  # no content (an effort-only message): nothing to say
        {"role": "assistant", "content": "Done."},
        {"role": "user", "content": "Thanks"},
        {"role": "system", "content": "Still shown.", "clear_at": "next_user_message"}]}
    assert to_chat(body, False)["messages"] == [
        {"role": "system", "content": "Top."},
        {"role": "user", "content": "Read a.txt"},
        {"role": "system", "content": "<system-reminder>a</system-reminder>\n\nb"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "Read", "arguments": '{"p":"a"}'}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "A"},
        {"role": "assistant", "content": "Done."},
        {"role": "user", "content": "Thanks"},
        {"role": "system", "content": "Still shown."}]
    # count_tokens and cut-stream estimates count what the model is shown: the cleared reminder is not.
    assert [m["content"] for m in estimate_messages(body) if m["role"] == "system"] == [
        "Top.", "<system-reminder>a</system-reminder>\nb", "", "Still shown."]


def test_tool_changes_in_a_system_message_only_work_with_anthropic():
    body = {"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "hi"},
        {"role": "system", "content": [{"type": "tool_removal", "tool": {"type": "tool_reference", "name": "f"}}]}]}
    with pytest.raises(UpstreamError) as info:
        to_chat(body, False)
    assert info.value.status == 400 and info.value.param == "messages[1].content[0]"


def test_a_user_id_longer_than_openai_takes_goes_as_its_sha256():
    import hashlib

    claude_code = '{"device_id":"' + "a" * 64 + '","account_uuid":"","session_id":"' + "d542c0d6" * 4 + '"}'
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    assert to_chat({**body, "metadata": {"user_id": "u-9"}}, False)["user"] == "u-9"
    user = to_chat({**body, "metadata": {"user_id": claude_code}}, False)["user"]
    assert user == hashlib.sha256(claude_code.encode()).hexdigest() and len(user) == 64


def test_deferred_tools_are_offered_only_once_surfaced():
    """Anthropic withholds a `defer_loading` tool until a tool search (a tool_reference in a tool's result) or a
    tool_addition surfaces it; Claude Code declares a deferred placeholder on every request."""
    schema = {"type": "object"}
    tools = [{"name": "Read", "input_schema": schema},
             {"name": "DeferredToolPlaceholder", "input_schema": schema, "defer_loading": True},
             {"name": "mcp__db__query", "input_schema": schema, "defer_loading": True}]
    first = {"model": "m", "max_tokens": 5, "tools": tools, "messages": [{"role": "user", "content": "hi"}]}
    assert [t["function"]["name"] for t in to_chat(first, False)["tools"]] == ["Read"]
    later = {**first, "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "ToolSearch", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [
            {"type": "tool_reference", "tool_name": "mcp__db__query"}]}]}]}
    chat = to_chat(later, False)
    assert [t["function"]["name"] for t in chat["tools"]] == ["Read", "mcp__db__query"]
    assert chat["messages"][-1] == {"role": "tool", "tool_call_id": "t1", "content": ""}
