"""Estimated usage: exact tiktoken counts for OpenAI-family models with no network at all, the
character approximation for the rest, and what a stream that ended without usage is billed."""

import hashlib
import socket

import pytest
import toktok

from accounting import estimate, tokens
from gomodel.gateway.usage_record import UsageRecord
from providers.base import Target, Usage

TEXTS = ["Hello from the fake upstream!", "", "naïve café — 東京 🚀 x=1+2", "def f(a, b):\n    return a ** b\n" * 20,
         " leading and trailing spaces  ", "The quick brown fox jumps over the lazy dog. " * 50]


@pytest.fixture
def offline(monkeypatch, tmp_path, settings):
    """No network, an empty TIKTOKEN_DATA_DIR and no encoding loaded yet in this process."""

    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    settings.TIKTOKEN_DATA_DIR = tmp_path / "tiktoken"
    monkeypatch.setattr(tokens, "_encodings", {})
    monkeypatch.setattr(tokens, "_failed", set())
    return settings.TIKTOKEN_DATA_DIR


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
def test_encodings_load_offline_and_count_like_openais(offline, name):
    encoding = tokens.get_encoding(name)
    assert encoding is not None and encoding.name == name
    counts = [len(encoding.encode_ordinary(text)) for text in TEXTS]
    # toktok-rs is an independent implementation with the same ids as tiktoken + OpenAI's files
    assert counts == toktok.batch_count(TEXTS, name)
    assert encoding.encode_ordinary("hello world") == ([24912, 2375] if name == "o200k_base" else [15339, 1917])
    assert encoding.decode(encoding.encode_ordinary(TEXTS[2])) == TEXTS[2]


def test_o200k_file_is_written_once_and_is_openais(offline):
    assert tokens.get_encoding("o200k_base") is not None
    written = offline / "o200k_base.tiktoken"
    assert hashlib.sha256(written.read_bytes()).hexdigest() == tokens.EXPECTED_SHA256["o200k_base"]


def test_a_file_that_is_not_openais_is_ignored(offline):
    offline.mkdir(parents=True)
    (offline / "cl100k_base.tiktoken").write_bytes(b"IQ== 0\n")  # a tampered vocabulary
    encoding = tokens.get_encoding("cl100k_base")
    assert encoding is not None and len(encoding.encode_ordinary("hello world")) == 2


def test_openai_models_are_estimated_with_tiktoken_and_others_by_characters(offline):
    text = TEXTS[3]
    assert estimate.estimate_text_tokens(text, "gpt-4o-mini") == toktok.batch_count([text], "o200k_base")[0]
    assert estimate.estimate_text_tokens(text, "claude-3-5-haiku") == -(-len(text) // 4)
    assert estimate.method("gpt-4o-mini") == "tiktoken:o200k_base"
    assert estimate.method("gemini-2.5-pro") == "chars/4"


def test_prompt_estimate_follows_openais_message_rule(offline):
    messages = [{"role": "system", "content": "You are terse."},
                {"role": "user", "name": "ana", "content": [{"type": "text", "text": "Hello"},
                                                             {"type": "image_url", "image_url": {"url": "x"}}]}]
    count = lambda s: toktok.batch_count([s], "o200k_base")[0]  # noqa: E731
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


def _record(model="gpt-4o-mini", stream=True):
    target = Target(id=1, name="openai", provider_type="openai", wire="openai_compat", base_url="", api_key="")
    return UsageRecord(_Req(), target, model, model, "/v1/chat/completions", stream,
                       [{"role": "user", "content": "Tell me a story"}])


def test_a_stream_cut_short_is_billed_for_what_was_relayed_as_estimated(offline):
    record = _record()
    for piece in ["Once", " upon", " a", " time", ", far away"]:
        record.relay({"choices": [{"index": 0, "delta": {"content": piece}}]})
    record.relay({"choices": [{"index": 0, "delta": {"tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}}]})
    record.status, record.error_type = 499, "client_disconnected"
    event = record.event()
    assert event.usage_source == "estimated"
    assert event.completion_tokens == toktok.batch_count(["Once upon a time, far awayf{}"], "o200k_base")[0]
    assert event.prompt_tokens == estimate.estimate_prompt_tokens(record.messages, "gpt-4o-mini")
    assert event.total_tokens == event.prompt_tokens + event.completion_tokens


def test_reported_usage_wins_and_nothing_generated_is_none(offline):
    record = _record()
    record.usage = Usage(prompt_tokens=9, completion_tokens=4, total_tokens=13, reasoning_tokens=1)
    assert (record.event().usage_source, record.event().completion_tokens) == ("reported", 4)
    failed = _record(stream=False)
    failed.status, failed.error_type = 502, "provider_error"
    assert (failed.event().usage_source, failed.event().total_tokens) == ("none", 0)
