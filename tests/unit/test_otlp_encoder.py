"""The gateway's OTLP encoder writes what the SDK's encoder writes (decoded with the official protobuf and compared
message to message), for spans shaped like the gateway's, and declines what it does not write."""

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from gomodel.gateway.otlp_encoder import encode

RESOURCE = Resource.create({"service.name": "gomodel"})
SCOPE = InstrumentationScope("gomodel.gateway")


def spans():
    remote = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, is_remote=True,
                         trace_flags=TraceFlags(1), trace_state=TraceState([("congo", "t61rcWkgMzE")]))
    call = SpanContext(remote.trace_id, 0x1111111111111111, is_remote=False, trace_flags=TraceFlags(1),
                       trace_state=remote.trace_state)
    attempt = SpanContext(remote.trace_id, 0x2222222222222222, is_remote=False, trace_flags=TraceFlags(3))
    return [
        ReadableSpan("chat gpt-4o-mini", context=call, parent=remote, resource=RESOURCE, kind=SpanKind.SERVER,
                     attributes={"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 11,
                                 "gen_ai.request.temperature": 0.2, "gomodel.stream": True, "negative": -5,
                                 "gen_ai.response.finish_reasons": ["stop", "length"], "é": "ünïcode ✓"},
                     events=[Event("gen_ai.first_token", timestamp=1_700_000_000_123_456_789)],
                     status=Status(StatusCode.ERROR), start_time=1_700_000_000_000_000_000,
                     end_time=1_700_000_001_000_000_000, instrumentation_scope=SCOPE),
        ReadableSpan("chat gpt-4o-mini", context=attempt, parent=call, resource=RESOURCE, kind=SpanKind.CLIENT,
                     attributes={"http.response.status_code": 200}, status=Status(),
                     start_time=1_700_000_000_100_000_000, end_time=1_700_000_000_900_000_000,
                     instrumentation_scope=SCOPE),
        ReadableSpan("root", context=SpanContext(7, 8, is_remote=False, trace_flags=TraceFlags(1)), parent=None,
                     resource=RESOURCE, attributes={}, start_time=1, end_time=2, instrumentation_scope=SCOPE),
    ]


def test_the_encoding_is_the_sdks():
    ours = ExportTraceServiceRequest.FromString(encode(spans()))
    assert ours == encode_spans(spans())


def test_what_it_does_not_write_is_left_to_the_sdk():
    assert encode([]) is None
    other = spans()
    other[1]._resource = Resource.create({"service.name": "other"})
    assert encode(other) is None
    linked = spans()
    linked[0]._links = (Link(linked[1].context),)
    assert encode(linked) is None
    odd = spans()
    odd[0]._attributes = {"bytes": b"\x00"}
    assert encode(odd) is None
