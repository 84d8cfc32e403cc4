"""accounting.usage.events: the one type of a usage stream entry, its encode and its lenient decode."""

import dataclasses
from datetime import date, datetime, timezone

import orjson
import pytest

from accounting.usage.events import StreamEvent, decode, encode

EVENT = StreamEvent(
    request_id="req_1", ts=1_700_000_000.25, tenant_id=4, tenant="acme", api_key_id=9, api_key_prefix="sk_gom_…abcd",
    provider_id=3, provider="groq", provider_type="groq", requested_model="groq/llama", model="llama",
    endpoint="/v1/chat/completions", status=200, error_type=None, stream=True, latency_ms=12.5, ttft_ms=3.0,
    prompt_tokens=20, completion_tokens=5, total_tokens=25, cached_tokens=4, reasoning_tokens=1,
    usage_source="reported", attempts=[{"provider": "groq", "model": "llama", "status": 200, "error": None}])


def test_encode_then_decode_gives_the_event_back():
    assert decode(encode(EVENT)) == EVENT


def test_the_wire_is_one_json_object_with_every_field_by_name():
    wire = orjson.loads(encode(EVENT))
    assert list(wire) == [f.name for f in dataclasses.fields(StreamEvent)]
    assert (wire["endpoint"], wire["tenant"], wire["error_type"], wire["ts"]) == (
        "/v1/chat/completions", "acme", None, 1_700_000_000.25)


def test_an_entry_written_before_the_type_existed_decodes():
    old = {"request_id": "r", "ts": 1_700_000_000, "tenant": "acme", "provider": "openai", "model": "m",
           "status": 200, "prompt_tokens": 3, "completion_tokens": 4}
    event = decode(orjson.dumps(old))
    assert (event.total_tokens, event.usage_source, event.tenant_id, event.attempts) == (7, "reported", None, [])
    assert event.created_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)
    assert event.day == date(2023, 11, 14)


def test_odd_values_are_clamped_cut_or_dropped():
    event = decode({"request_id": "r", "prompt_tokens": -5, "completion_tokens": "7", "cached_tokens": 2**40,
                    "model": "m" * 400, "status": "200", "ts": None, "tenant_id": True, "stream": 1,
                    "usage_source": "guessed", "error_type": 5, "latency_ms": "fast"})
    assert (event.prompt_tokens, event.completion_tokens, event.cached_tokens, len(event.model), event.status) == (
        0, 0, 2**31 - 1, 255, 0)
    assert (event.tenant_id, event.stream, event.usage_source, event.error_type, event.latency_ms) == (
        None, False, "reported", None, None)
    assert abs(event.ts - datetime.now(timezone.utc).timestamp()) < 60  # no time: now


@pytest.mark.parametrize("raw", [b"not json", b"[1]", b'{"status": 200}', b'{"request_id": ""}',
                                 orjson.dumps({"request_id": "x" * 65})])
def test_an_entry_that_cannot_be_billed_is_refused(raw):
    with pytest.raises(ValueError):
        decode(raw)
