"""The OTLP protobuf of the gateway's spans (an ExportTraceServiceRequest), written directly: the exporter's own
encoder builds a protobuf object per attribute and cost ~45 µs a span here, most of what tracing still cost a call.
The gateway's spans are few-field and of one resource and scope; `encode` returns None for anything else and the
caller uses the SDK's encoder. tests/e2e/test_traces.py decodes what this writes with the official protobuf."""

import struct
from typing import Any

_pack_q = struct.Struct("<Q").pack
_pack_d = struct.Struct("<d").pack
_pack_i = struct.Struct("<I").pack
_keys: dict[str, bytes] = {}  # a KeyValue's encoded key, by name (the gateway uses a few dozen)
_pairs: dict[tuple[int, str, Any], bytes] = {}  # whole KeyValues of text and flags, which mostly repeat
PAIRS_MAX = 4096  # past it (many tenants and models) a pair is encoded each time
UNIQUE = frozenset(("gomodel.request_id", "gen_ai.response.id", "gen_ai.input.messages", "gen_ai.output.messages"))


_SMALL = [bytes((n,)) for n in range(128)]  # a varint below 128 is its one byte: most lengths and every tag here


def _varint(n: int) -> bytes:
    if n < 128:
        return _SMALL[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (strings, bytes, messages) numbered 1–15 (its tag is one byte)."""
    size = len(payload)
    return _SMALL[number << 3 | 2] + (_SMALL[size] if size < 128 else _varint(size)) + payload


def _any(value: Any) -> bytes:
    """An AnyValue; ValueError for a type the gateway never sets."""
    if isinstance(value, str):
        return _field(1, value.encode())
    if isinstance(value, bool):
        return b"\x10" + (b"\x01" if value else b"\x00")
    if isinstance(value, int):
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)
    if isinstance(value, float):
        return b"\x21" + _pack_d(value)
    if isinstance(value, (list, tuple)):
        return _field(5, b"".join(_field(1, _any(item)) for item in value))
    raise ValueError(f"no OTLP encoding here for {type(value).__name__}")


def _attributes(number: int, attributes: Any) -> bytes:
    out = []
    for key, value in attributes.items():
        if (value.__class__ is str or value.__class__ is bool) and key not in UNIQUE:  # most repeat
            pair = _pairs.get((number, key, value))
            if pair is None:
                pair = _pair(number, key, value)
                if len(_pairs) < PAIRS_MAX:
                    _pairs[(number, key, value)] = pair
            out.append(pair)
        else:
            out.append(_pair(number, key, value))
    return b"".join(out)


def _pair(number: int, key: str, value: Any) -> bytes:
    encoded = _keys.get(key)
    if encoded is None:
        encoded = _keys[key] = _field(1, key.encode())
    return _field(number, encoded + _field(2, _any(value)))


def _span(span: Any) -> bytes:
    context, parent = span.context, span.parent
    out = [b"\x0a\x10" + context.trace_id.to_bytes(16, "big"), b"\x12\x08" + context.span_id.to_bytes(8, "big")]
    state = context.trace_state.to_header() if context.trace_state else ""
    if state:
        out.append(_field(3, state.encode()))
    flags = 0x100  # SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE (as the SDK writes it: no trace flags)
    if parent is not None:
        out.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
        if parent.is_remote:
            flags |= 0x200
    out.append(_field(5, span.name.encode()))
    out.append(b"\x30" + _varint(span.kind.value + 1))  # OTLP's SpanKind counts from UNSPECIFIED
    out.append(b"\x39" + _pack_q(span.start_time) + b"\x41" + _pack_q(span.end_time))
    out.append(_attributes(9, span.attributes))
    for event in span.events:
        body = b"\x09" + _pack_q(event.timestamp) + _field(2, event.name.encode())
        if event.attributes:
            body += _attributes(3, event.attributes)
        out.append(_field(11, body))
    code = span.status.status_code.value
    out.append(_field(15, b"\x18" + _varint(code) if code else b""))  # present though unset, as the SDK's
    out.append(b"\x85\x01" + _pack_i(flags))  # field 16, fixed32
    return b"".join(out)


def encode(spans: Any) -> bytes | None:
    """The request for `spans`, or None when they are not all of one resource and scope without links."""
    if not spans:
        return None
    resource, scope = spans[0].resource, spans[0].instrumentation_scope
    for span in spans:
        if span.resource is not resource or span.instrumentation_scope is not scope or span.links:
            return None
    try:
        encoded = b"".join(_field(2, _span(span)) for span in spans)
        scope_bytes = _field(1, scope.name.encode()) + (_field(2, scope.version.encode()) if scope.version else b"")
        resource_spans = (_field(1, _attributes(1, resource.attributes)) + _field(2, _field(1, scope_bytes)
                                                                                   + encoded))
    except ValueError:
        return None
    return _field(1, resource_spans)
