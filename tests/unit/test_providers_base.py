"""providers.base: SSE framing, usage normalisation and upstream error bodies."""

import orjson
import pytest

from providers.base import SSEDecoder, Usage, error_message


def feed_all(pieces: list[bytes]) -> list[tuple[str | None, bytes]]:
    decoder = SSEDecoder()
    events = []
    for piece in pieces:
        events.extend(decoder.feed(piece))
    return events + decoder.close()


STREAM = (b'data: {"a":1}\n\n'
          b"data:{\"b\":2}\n\n"  # no space after the colon (Kimi)
          b": keep-alive comment\n\n"
          b"event: message_start\r\ndata: {\"c\":3}\r\n\r\n"  # CRLF framing and an event name
          b"id: 7\nretry: 1000\ndata: line one\ndata: line two\n\n"  # multi-line data, ignored fields
          b"data: [DONE]\n\n")
EXPECTED = [(None, b'{"a":1}'), (None, b'{"b":2}'), ("message_start", b'{"c":3}'), (None, b"line one\nline two"),
            (None, b"[DONE]")]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 13, len(STREAM)])
def test_decoder_events_do_not_depend_on_chunk_boundaries(size):
    pieces = [STREAM[i:i + size] for i in range(0, len(STREAM), size)]
    assert feed_all(pieces) == EXPECTED


def test_decoder_returns_events_as_soon_as_they_are_complete():
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"a"') == []
    assert decoder.feed(b":1}\n") == []
    assert decoder.feed(b"\n") == [(None, b'{"a":1}')]
    assert decoder.close() == []


def test_decoder_close_flushes_a_last_event_without_blank_line():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: [DONE]") == []
    assert decoder.close() == [(None, b"[DONE]")]


def test_decoder_event_name_applies_to_one_event_only():
    events = feed_all([b"event: ping\ndata: 1\n\ndata: 2\n\n"])
    assert events == [("ping", b"1"), (None, b"2")]


def test_decoder_drops_blank_events_and_comments():
    assert feed_all([b"\n\n: just a comment\n\nevent: x\n\n"]) == []


def test_decoder_keeps_a_data_value_whose_own_text_starts_with_a_space():
    # Only the one optional space after "data:" is framing.
    assert feed_all([b"data:  two spaces\n\n"]) == [(None, b" two spaces")]


def test_usage_from_openai_full():
    usage = Usage.from_openai({"prompt_tokens": 100, "completion_tokens": 40, "total_tokens": 140,
                               "prompt_tokens_details": {"cached_tokens": 60},
                               "completion_tokens_details": {"reasoning_tokens": 30}})
    assert usage == Usage(100, 40, 140, 60, 30)


@pytest.mark.parametrize("raw", [None, [], "12", 3])
def test_usage_from_openai_not_a_dict(raw):
    assert Usage.from_openai(raw) is None


def test_usage_from_openai_tolerates_odd_details():
    usage = Usage.from_openai({"prompt_tokens": 2, "completion_tokens": 3, "prompt_tokens_details": "n/a",
                               "completion_tokens_details": None})
    assert usage == Usage(2, 3, 5, 0, 0)


def test_error_message_openai_dialect():
    raw = b'{"error": {"message": "temperature is out of range", "type": "invalid_request_error", ' \
          b'"param": "temperature", "code": "invalid_value"}}'
    assert error_message(raw, 400) == ("temperature is out of range", "temperature", "invalid_value")


def test_error_message_without_code_or_param():
    assert error_message(b'{"error": {"message": "The server had an error"}}', 500) == (
        "The server had an error", None, None)


def test_error_message_from_plain_text_and_empty_bodies():
    assert error_message(b"Bad Gateway\n", 502) == ("Bad Gateway", None, None)
    assert error_message(b"", 503) == ("upstream answered HTTP 503", None, None)
    assert error_message(b"x" * 2000, 500)[0] == "x" * 500  # bounded


def test_error_message_other_shapes():
    assert error_message(b'{"error": "model not loaded"}', 404) == ("model not loaded", None, None)
    assert error_message(b'{"message": "quota exceeded"}', 429) == ("quota exceeded", None, None)
    assert error_message(b"[1, 2]", 500) == ("upstream answered HTTP 500", None, None)
    assert error_message(b'{"error": {"type": "overloaded"}}', 503)[0] == "overloaded"


def test_scrub_secrets_removes_keys_tokens_and_the_host():
    from providers.base import REDACTED, scrub_secrets

    text = ("proxy api.example.com:443 said: Authorization: Bearer abc.def.ghi refused; key my-plain-key-123 "
            "sk-proj-abcdefghijkl gsk_0123456789abcdef AIzaSyA0123456789abcdefghijklmnop "
            "ZXhhbXBsZV9pbnRlcm5hbF9zZWNyZXRfdG9rZW4xMjM0NTY3OA== 0123456789abcdef0123456789abcdef; try later")
    clean = scrub_secrets(text, api_key="my-plain-key-123", base_url="https://API.example.com/v1")
    for secret in ("example.com", "abc.def.ghi", "my-plain-key-123", "sk-proj", "gsk_", "AIza", "ZXhhbXBs",
                   "0123456789abcdef0"):
        assert secret not in clean, secret
    assert clean.startswith("proxy [upstream host]:443 said:") and clean.endswith("; try later")
    assert clean.count(REDACTED) == 7
    # Ordinary prose, ids and numbers stay readable.
    plain = "The model 'gpt-4o-mini' is overloaded (HTTP 503); retry in 2 s, request req_12ab."
    assert scrub_secrets(plain, api_key="", base_url="") == plain


def test_error_message_scrubs_for_a_target_before_cutting():
    from providers.base import Target

    target = Target(id=1, name="p", provider_type="openai", wire="openai", base_url="http://10.1.2.3:8000/v1",
                    api_key="sk-live-0123456789")
    raw = b"x " * 240 + b"at 10.1.2.3 with sk-live-0123456789 " + b"y " * 400
    message, _, _ = error_message(raw, 502, target)
    assert "10.1.2.3" not in message and "sk-live" not in message and len(message) <= 500
    raw = orjson.dumps({"error": {"message": "bad key sk-live-0123456789 for 10.1.2.3", "code": "x"}})
    assert error_message(raw, 400, target) == ("bad key [redacted] for [upstream host]", None, "x")


def test_sse_decoder_gives_the_same_events_however_the_bytes_are_cut():
    raw = b"event: a\r\ndata: 1\r\n\r\n: comment\ndata: x\ndata: y\n\ndata:{\"k\": \"v\"}\n\ndata: tail"
    expected = [("a", b"1"), (None, b"x\ny"), (None, b'{"k": "v"}'), (None, b"tail")]
    whole = SSEDecoder()
    assert whole.feed(raw) + whole.close() == expected
    for size in (1, 2, 3, 7):
        decoder = SSEDecoder()
        events = [e for i in range(0, len(raw), size) for e in decoder.feed(raw[i:i + size])]
        assert events + decoder.close() == expected, size


def test_sse_decoder_is_linear_on_a_long_line():
    # 4 MiB in 1 KiB chunks: re-joining the buffer on every chunk copied ~8 GB.
    import time

    decoder = SSEDecoder(max_event=8 * 1024 * 1024)
    started = time.perf_counter()
    piece = b"a" * 1024
    assert decoder.feed(b"data: ") == []
    for _ in range(4096):
        assert decoder.feed(piece) == []
    [(_, data)] = decoder.feed(b"\n\n")
    assert len(data) == 4 * 1024 * 1024
    assert time.perf_counter() - started < 1.0


def test_sse_decoder_refuses_a_line_or_an_event_over_its_cap():
    from providers.base import StreamError

    decoder = SSEDecoder(max_event=1000)
    decoder.feed(b"data: " + b"x" * 900)
    with pytest.raises(StreamError) as caught:
        decoder.feed(b"x" * 200)  # no newline yet: the line alone is over the cap
    assert caught.value.code == "upstream_response_too_large"
    decoder = SSEDecoder(max_event=1000)
    with pytest.raises(StreamError):  # many short data lines, never a blank one
        for _ in range(100):
            decoder.feed(b"data: " + b"y" * 50 + b"\n")
    decoder = SSEDecoder(max_event=1000)
    for _ in range(100):  # the same volume in separate events is fine
        assert decoder.feed(b"data: " + b"z" * 50 + b"\n\n") == [(None, b"z" * 50)]
