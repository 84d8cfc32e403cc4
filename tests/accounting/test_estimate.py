"""Estimated usage: exact token counts for OpenAI-family models (toktok-rs, offline, outside the
Python heap), the character approximation for the rest, what a stream that ended without usage is
billed, and that the gateway only ever puts a bounded estimate on the event (the drain counts it)."""

import math
import socket
import time

import pytest

from accounting.usage import estimate, tokens
from accounting.usage import events as usage_event
from gomodel.gateway.usage_record import UsageRecord
from providers.base import Target, Usage

TEXTS = ["Hello from the fake upstream!", "", "naïve café — 東京 🚀 x=1+2", "def f(a, b):\n    return a ** b\n" * 20,
         " leading and trailing spaces  ", "The quick brown fox jumps over the lazy dog. " * 50]
# tiktoken 0.14's `len(encoding.encode_ordinary(text))` for TEXTS with OpenAI's published vocabularies
# (measured when tiktoken was replaced; the earlier suite compared the two live on every run).
TIKTOKEN_COUNTS = {"o200k_base": [6, 0, 13, 240, 5, 501], "cl100k_base": [6, 0, 16, 240, 5, 501]}


@pytest.fixture
def offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.mark.parametrize("model, encoding", [
    ("gpt-4o-mini", "o200k_base"), ("gpt-4o-2024-08-06", "o200k_base"), ("gpt-4.1-nano", "o200k_base"),
    ("o3-mini", "o200k_base"), ("gpt-5", "o200k_base"), ("openai/gpt-4o", "o200k_base"),
    ("gpt-oss-120b", "o200k_base"), ("gpt-4", "cl100k_base"), ("gpt-3.5-turbo-0125", "cl100k_base"),
    ("claude-sonnet-4-20250514", None), ("gemini-2.5-flash", None), ("llama-3.3-70b-versatile", None),
    ("grok-3-mini", None), ("", None),
])
def test_encoding_for_model(model, encoding):
    assert tokens.encoding_name(model) == encoding


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_counts_offline_equal_tiktokens(offline, name):
    counts = tokens.count(TEXTS, name)
    assert counts == TIKTOKEN_COUNTS[name]
    assert sum(counts) == pytest.approx(sum(TIKTOKEN_COUNTS[name]), rel=0.01)  # the 1 % budget, not used
    assert tokens.count(["hello world"], name) == [2]


def test_special_token_strings_count_as_ordinary_text(offline):
    # tiktoken's encode_ordinary: "<|endoftext|>" in a prompt is text, not one special token
    assert tokens.count(["<|endoftext|>"], "o200k_base")[0] > 1


def test_openai_models_are_estimated_exactly_and_others_by_characters(offline):
    text = TEXTS[3]
    assert estimate.estimate_text_tokens(text, "gpt-4o-mini") == TIKTOKEN_COUNTS["o200k_base"][3]
    assert estimate.estimate_text_tokens(text, "claude-3-5-haiku") == -(-len(text) // 4)
    assert estimate.method("gpt-4o-mini") == "tiktoken:o200k_base"
    assert estimate.method("gemini-2.5-pro") == "chars/4"


def test_prompt_estimate_follows_openais_message_rule(offline):
    messages = [{"role": "system", "content": "You are terse."},
                {"role": "user", "name": "ana", "content": [{"type": "text", "text": "Hello"},
                                                             {"type": "image_url", "image_url": {"url": "x"}}]}]
    count = lambda s: tokens.count([s], "o200k_base")[0]  # noqa: E731
    expected = 3 + (3 + count("system") + count("You are terse.")) + (3 + 1 + count("user") + count("ana")
                                                                      + count("Hello"))
    assert estimate.estimate_prompt_tokens(messages, "gpt-4o") == expected
    assert estimate.estimate_prompt_tokens(messages, "mistral-large") == 3 + (4 + 4) + (4 + 2)


class _Req:
    request_id = "req_test"
    started = 0.0

    def __init__(self):
        from gomodel.gateway.auth import Principal

        self.auth = Principal(tenant_id=1, tenant_slug="acme", key_id=2, key_prefix="sk_gom_…abcd")


def _record(model="gpt-4o-mini", stream=True, messages=None):
    target = Target(id=1, name="openai", provider_type="openai", wire="openai_compat", base_url="", api_key="")
    return UsageRecord(_Req(), target, model, model, "/v1/chat/completions", stream,
                       messages or [{"role": "user", "content": "Tell me a story"}])


def _stored(event):
    """The event as the drain reads it back from the stream and counts it."""
    return estimate.settle(usage_event.decode(usage_event.encode(event)))


def test_a_stream_cut_short_is_billed_for_what_was_relayed_as_estimated(offline):
    record = _record()
    for piece in ["Once", " upon", " a", " time", ", far away"]:
        record.relay({"choices": [{"index": 0, "delta": {"content": piece}}]})
    record.relay({"choices": [{"index": 0, "delta": {"tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}}]})
    record.status, record.error_type = 499, "client_disconnected"
    event = record.event()
    assert event.usage_source == "estimated"
    # On the gateway: the characters/4 approximation and a pending estimate; the drain counts it exactly.
    assert event.completion_tokens == math.ceil(len("Once upon a time, far awayf{}") / 4)
    stored = _stored(event)
    assert stored.completion_tokens == tokens.count(["Once upon a time, far awayf{}"], "o200k_base")[0]
    assert stored.prompt_tokens == estimate.estimate_prompt_tokens(record.messages, "gpt-4o-mini")
    assert stored.total_tokens == stored.prompt_tokens + stored.completion_tokens
    live = usage_event.decode(usage_event.encode(event))  # the dashboard feed, on a loop: not counted
    assert live.completion_tokens == event.completion_tokens and live.estimate == event.estimate


def test_models_without_a_tokenizer_get_their_final_numbers_at_the_gateway(offline):
    record = _record(model="claude-3-5-haiku")
    record.relay({"choices": [{"delta": {"content": "Hello there, how are you"}}]})
    record.status = 499
    event = record.event()
    assert event.estimate is None
    assert event.completion_tokens == math.ceil(len("Hello there, how are you") / 4)
    assert event.prompt_tokens == estimate.estimate_prompt_tokens(record.messages, "claude-3-5-haiku")
    assert _stored(event).completion_tokens == event.completion_tokens


def test_a_huge_cut_stream_puts_a_bounded_estimate_on_the_event_and_is_counted_by_ratio(offline):
    prompt = "a" * 8_000_000  # the worst case for BPE: no spaces, quadratic in tiktoken
    record = _record(messages=[{"role": "user", "content": prompt}])
    for _ in range(2):
        record.relay({"choices": [{"delta": {"content": "b" * 100_000}}]})
    record.status = 499
    started = time.perf_counter()
    event = record.event()
    built_ms = (time.perf_counter() - started) * 1000
    assert built_ms < 20, built_ms  # O(MAX_CHARS) on the loop, whatever the prompt's size
    assert sum(len(t) for t in record.relayed) == estimate.MAX_CHARS and record.relayed_chars == 200_000
    assert len(usage_event.encode(event)) < 3 * estimate.MAX_CHARS
    stored = _stored(event)
    exact_prompt = estimate.estimate_prompt_tokens(record.messages, "gpt-4o-mini")
    exact_completion = tokens.count(["b" * 200_000], "o200k_base")[0]
    assert stored.prompt_tokens == pytest.approx(exact_prompt, rel=0.001)
    assert stored.completion_tokens == pytest.approx(exact_completion, rel=0.001)


def test_prose_beyond_the_cap_is_estimated_within_one_percent(offline):
    text = " ".join(TEXTS) * 400  # ~330k characters of mixed prose, code and scripts
    record = _record(messages=[{"role": "user", "content": text}])
    record.relay({"choices": [{"delta": {"content": text}}]})
    record.status = 499
    stored = _stored(record.event())
    exact = tokens.count([text], "o200k_base")[0]
    assert stored.completion_tokens == pytest.approx(exact, rel=0.01)
    assert stored.prompt_tokens == pytest.approx(estimate.estimate_prompt_tokens(record.messages, "gpt-4o"),
                                                    rel=0.01)


def test_a_malformed_pending_estimate_keeps_the_approximation(offline):
    record = _record()
    record.relay({"choices": [{"delta": {"content": "Hello"}}]})
    record.status = 499
    event = record.event()
    event.estimate["encoding"] = "p50k_base"  # nothing we ship
    assert _stored(event).completion_tokens == event.completion_tokens
    event.estimate = {"encoding": "o200k_base", "overhead": -1}
    assert _stored(event).completion_tokens == event.completion_tokens


def test_reported_usage_wins_and_nothing_generated_is_none(offline):
    record = _record()
    record.usage = Usage(prompt_tokens=9, completion_tokens=4, total_tokens=13, reasoning_tokens=1)
    assert (record.event().usage_source, record.event().completion_tokens) == ("reported", 4)
    assert record.event().estimate is None
    failed = _record(stream=False)
    failed.status, failed.error_type = 502, "provider_error"
    assert (failed.event().usage_source, failed.event().total_tokens) == ("none", 0)
