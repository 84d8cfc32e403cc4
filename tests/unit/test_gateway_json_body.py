"""gomodel.gateway.json_body: a body too deep or too big is a 400 before orjson builds anything."""

import time
import tracemalloc

import orjson
import pytest

from gomodel.gateway.errors import GatewayError
from gomodel.gateway.json_body import check_json_shape, parse_json_object


def nested(depth: int, inner: bytes = b"1") -> bytes:
    """A chat body whose `metadata` field holds `depth` nested arrays (the body itself is one more level)."""
    return b'{"model":"m","metadata":' + b"[" * depth + inner + b"]" * depth + b"}"


def refused(raw: bytes, **limits) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        if limits:
            check_json_shape(raw, **limits)
        else:
            parse_json_object(raw)
    err = caught.value
    assert (err.status, err.type, err.code, err.param) == (400, "invalid_request_error", "json_too_complex", None)
    return err


def test_depth_at_the_limit_is_read(settings):
    assert settings.JSON_MAX_DEPTH == 64
    body = parse_json_object(nested(63))
    assert body["model"] == "m"


@pytest.mark.parametrize("depth", [64, 255, 256, 600, 1023])
def test_deeper_than_the_limit_is_400(depth):
    # 256–1023 levels: orjson reads them but cannot write them back (the 500 this replaces).
    assert "deeper than 64" in refused(nested(depth)).message


def test_brackets_commas_and_quotes_inside_strings_do_not_count():
    text = '[[[[{{{{,,,,"\\"]]]]' * 1000  # escaped quotes too: the scan must not lose track of strings
    raw = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": text}],
                        "tools": [{"type": "function", "function": {"name": f"f{i}", "parameters": {
                            "type": "object", "properties": {"a": {"type": "string", "enum": ["[", "{"]}}}}}
                                  for i in range(30)]})
    assert raw.count(b"[") + raw.count(b"{") > 1000  # the slow path, not the shortcut
    assert parse_json_object(raw) == orjson.loads(raw)
    raw_plain = raw.replace(b'\\"', b"'")  # no escaped quote: the split/join path
    assert parse_json_object(raw_plain) == orjson.loads(raw_plain)


def test_too_many_values_is_400():
    check_json_shape(b"[" + b",".join([b"0"] * 1000) + b"]", max_depth=64, max_items=1000)
    refused(b"[" + b",".join([b"0"] * 1002) + b"]", max_depth=64, max_items=1000)
    refused(b"[" + b"{}," * 1001 + b"{}]", max_depth=64, max_items=1000)


def test_nine_mib_of_empty_objects_is_refused_without_building_them():
    raw = b'{"model":"m","messages":[' + b",".join([b"{}"] * (9 * 1024 * 1024 // 3)) + b"]}"
    tracemalloc.start()
    try:
        started = time.perf_counter()
        refused(raw)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Parsed, these would be ~3 M dicts (~300 MB); the check copies the body at most about once.
    assert peak < 3 * len(raw), peak
    assert elapsed < 2.0


def test_escaped_quotes_without_an_end_stay_linear():
    # An unterminated string of escaped quotes once made the string scan quadratic and hold ~500 MB.
    raw = b"[" * 70 + b'"' + b'\\"' * 1_000_000
    tracemalloc.start()
    try:
        started = time.perf_counter()
        with pytest.raises(GatewayError):
            parse_json_object(raw)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 2.0 and peak < 3 * len(raw)


def test_not_json_is_still_invalid_json():
    with pytest.raises(GatewayError) as caught:
        parse_json_object(b"{" + b"]" * 200 + b"}")
    assert caught.value.code == "invalid_json"
