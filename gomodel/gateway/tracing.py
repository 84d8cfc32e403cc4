"""OpenTelemetry traces of /v1 calls, following the GenAI semantic conventions: one SERVER span per call
(`{gen_ai.operation.name} {gen_ai.request.model}`) and one CLIENT span per upstream attempt (retries,
failover), whose context goes upstream as W3C `traceparent`/`tracestate`. A client's `traceparent` is continued.

Off unless OTEL_EXPORTER_OTLP_ENDPOINT (or …_TRACES_ENDPOINT) is set (settings.OTEL_TRACING): the Call asks
that one setting, its hooks then find `trace is None`, and nothing here runs; the SDK is imported, and its parts
made, on the first traced call. Spans are encoded (otlp_encoder.py) and sent by a BatchSpanProcessor's thread,
never on the event loop.

Never in a span: an API key (the gateway's or a provider's), a header, an upstream URL (some carry keys), a
body; prompt and completion text only when OTEL_GENAI_CAPTURE_CONTENT=1 (gen_ai.input.messages /
gen_ai.output.messages, JSON as the conventions give it)."""

from __future__ import annotations

import functools
import gc
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from django.conf import settings

if TYPE_CHECKING:
    from providers.base import Target

    from .auth import Principal
    from .http import Request
    from .pipeline.protocol import Exchange

# The gateway's endpoints as gen_ai.operation.name (the conventions' names where there is one).
OPERATIONS = {
    "/v1/chat/completions": "chat",
    "/v1/messages": "chat",
    "/v1/responses": "chat",
    "/v1/embeddings": "embeddings",
    "/v1/messages/count_tokens": "count_tokens",
    "/v1/images/generations": "generate_content",
    "/v1/audio/speech": "generate_content",
    "/v1/moderations": "moderations",
}
# gen_ai.provider.name's well-known values, by the catalogue's provider type (others go as they are).
PROVIDER_NAMES = {"gemini": "gcp.gemini", "xai": "x_ai", "bailian": "alibaba.bailian"}
CONTENT_MAX_CHARS = 64 * 1024  # a streamed completion kept for gen_ai.output.messages, at most
SAMPLED, RANDOM_TRACE_ID = 0x01, 0x02  # W3C trace flags

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def never_fails(fallback: Callable[..., Any] = lambda *args: None) -> Callable[[F], F]:
    """A trace must never cost a call its answer: a failure here is logged and the call goes on
    (`fallback(*args)` is returned instead)."""
    def wrap(method: F) -> F:
        @functools.wraps(method)
        def safe(*args: Any) -> Any:
            try:
                return method(*args)
            except Exception:
                log.exception("tracing failed in %s; the call goes on", method.__name__)
                return fallback(*args)
        return safe  # type: ignore[return-value]
    return wrap


# The SDK's parts a traced call uses, made on the first one (they read OTEL_* from the environment then).
_provider: Any = None
_lock = threading.Lock()


def sdk() -> Any:
    global _provider
    if _provider is None:
        with _lock:
            if _provider is None:
                _provider = _new_sdk()
                if gc.get_freeze_count():
                    # Start-up froze its objects out of the collector's way (app.freeze_startup_objects); the SDK
                    # and protobuf came after (~10 MB): frozen too, a full collection stays ~1 ms, not ~5.
                    gc.collect()
                    gc.freeze()
    return _provider


def _new_sdk() -> Any:
    """The SDK's sampler, id generator, resource and batch processor with the OTLP/HTTP exporter. Its span
    objects are not used: they check every attribute as it is set (~100 µs a call for two spans, measured);
    a call's spans are plain data here until they end, then one ReadableSpan each for the processor."""
    from types import SimpleNamespace

    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, get_current_span
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    named = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    # OTEL_TRACES_SAMPLER(_ARG) and the resource's OTEL_* are read by the provider.
    provider = TracerProvider(resource=Resource.create({} if named else {SERVICE_NAME: "gomodel"}))
    return SimpleNamespace(
        sampler=provider.sampler, ids=provider.id_generator, resource=provider.resource,
        random_ids=provider.id_generator.is_trace_id_random(),
        # Endpoint, headers, timeout and compression from OTEL_EXPORTER_OTLP_*; queue and batch from OTEL_BSP_*.
        processor=BatchSpanProcessor(_exporter(OTLPSpanExporter, SpanExportResult)()),
        scope=InstrumentationScope("gomodel.gateway"), propagator=TraceContextTextMapPropagator(),
        parent_of=lambda context: get_current_span(context).get_span_context(),
        SpanContext=SpanContext, TraceFlags=TraceFlags, ReadableSpan=ReadableSpan, Event=Event,
        SERVER=SpanKind.SERVER, CLIENT=SpanKind.CLIENT, OK=Status(), ERROR=Status(StatusCode.ERROR))


def _exporter(base: Any, result: Any) -> Any:
    """The OTLP/HTTP exporter with the gateway's own protobuf encoder (otlp_encoder.py: ~3x cheaper a span than
    the SDK's). What it cannot write, and anything after shutdown, goes the SDK's way. Its HTTP client (retries,
    compression, headers) is the exporter's `_client`: a private name, hence the pinned version."""
    from .otlp_encoder import encode

    class Exporter(base):
        def export(self, spans: Any) -> Any:
            data = None if self._shutdown else encode(spans)
            if data is None:
                return super().export(spans)
            return result.SUCCESS if self._client.export(data).success else result.FAILURE

    return Exporter


def started() -> bool:
    return _provider is not None


def flush(timeout_ms: int = 5000) -> bool:
    """Send what is queued now (tests; shutdown)."""
    return bool(_provider.processor.force_flush(timeout_ms)) if _provider is not None else True


def shutdown() -> None:
    """Flush and stop the exporter; the next traced call makes new ones (the OTEL_* read again)."""
    global _provider
    with _lock:
        provider, _provider = _provider, None
    if provider is not None:
        provider.processor.shutdown()


def begin(req: Request, principal: Principal, protocol: Exchange) -> CallTrace | None:
    """The call's trace (None, and the call untraced, should the SDK fail: a trace never costs an answer)."""
    try:
        return CallTrace(req, principal, protocol)
    except Exception:
        log.exception("tracing failed to start a span; the call goes on untraced")
        return None


class Span:
    """One span as plain data until it ends (then the SDK's ReadableSpan, for a sampled one)."""

    __slots__ = ("context", "parent", "name", "kind", "start", "attributes", "events", "failed")

    def __init__(self, context: Any, parent: Any, name: str, kind: Any, start: int,
                 attributes: dict[str, Any]) -> None:
        self.context, self.parent, self.name, self.kind, self.start = context, parent, name, kind, start
        self.attributes = attributes
        self.events: list[Any] = []
        self.failed = False

    def traceparent(self) -> dict[str, str]:
        context = self.context
        headers = {"traceparent": f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"}
        state = context.trace_state.to_header() if context.trace_state else ""
        if state:
            headers["tracestate"] = state
        return headers

    def fail(self, error_type: str) -> None:
        self.attributes["error.type"] = error_type
        self.failed = True

    def end(self) -> None:
        context = self.context
        if not context.trace_flags & SAMPLED:
            return
        otel = _provider
        if otel is None:  # shut down meanwhile
            return
        otel.processor.on_end(otel.ReadableSpan(
            name=self.name, context=context, parent=self.parent, resource=otel.resource, attributes=self.attributes,
            events=self.events, kind=self.kind, status=otel.ERROR if self.failed else otel.OK, start_time=self.start,
            end_time=time.time_ns(), instrumentation_scope=otel.scope))


class CallTrace:
    """One call's span and its attempts' spans. Made by pipeline.Call when tracing is on; fed by the call
    (settle/end), send_upstream (attempt_start) and the usage record (attempt outcomes, streamed chunks)."""

    __slots__ = ("span", "recording", "operation", "model", "capture", "prompt", "attempt_span", "attempts",
                 "finish_reasons", "output", "output_chars", "ended")

    def __init__(self, req: Request, principal: Principal, protocol: Exchange) -> None:
        otel = sdk()
        self.operation = OPERATIONS.get(protocol.endpoint, "passthrough")
        self.model = protocol.model
        carrier = {}
        for name in ("traceparent", "tracestate"):
            value = req.header(name.encode())
            if value is not None:
                carrier[name] = value
        parent_context = otel.propagator.extract(carrier) if carrier else None
        parent = otel.parent_of(parent_context) if parent_context is not None else None
        if parent is not None and not parent.is_valid:
            parent = None
        flags = 0
        if parent is None:
            trace_id = otel.ids.generate_trace_id()
            flags = RANDOM_TRACE_ID if otel.random_ids else 0
        else:
            trace_id = parent.trace_id
            flags = parent.trace_flags & RANDOM_TRACE_ID
        name = f"{self.operation} {self.model}"
        # What a sampler may read (the conventions' ask at a span's start); the default follows the client's flag.
        attributes: dict[str, Any] = {"gen_ai.operation.name": self.operation, "gen_ai.request.model": self.model}
        sampling = otel.sampler.should_sample(parent_context, trace_id, name, otel.SERVER, attributes)
        self.recording = sampling.decision.is_sampled()
        if self.recording:
            flags |= SAMPLED
            if sampling.attributes:
                attributes.update(sampling.attributes)
            attributes.update(request_attributes(req, principal, protocol))
        context = otel.SpanContext(trace_id, otel.ids.generate_span_id(), is_remote=False,
                                   trace_flags=otel.TraceFlags(flags), trace_state=sampling.trace_state)
        # The span starts when the request came in (its body read, its key checked), not when the Call is made.
        started = time.time_ns() - int((time.perf_counter() - req.started) * 1e9)
        self.span = Span(context, parent, name, otel.SERVER, started, attributes)
        self.capture = settings.OTEL_GENAI_CAPTURE_CONTENT
        self.prompt = protocol.prompt if self.capture else None  # read at the end (lazy, as the record's)
        self.attempt_span: Span | None = None
        self.attempts = 0
        self.finish_reasons: list[str] = []
        self.output: list[str] = []
        self.output_chars = 0
        self.ended = False

    # -- upstream attempts -----------------------------------------------------------------------------------

    @never_fails(lambda self, target, model, headers: headers)
    def attempt_start(self, target: Target, model: str, headers: dict[str, str]) -> dict[str, str]:
        """A span for the attempt about to be sent; returns the headers to send, with its traceparent."""
        span = self.attempt_span = self._attempt_span(target, model)
        # A copy: the built request may be memoised (response cache), never changed in place.
        return {**headers, **span.traceparent()}

    def _attempt_span(self, target: Target, model: str) -> Span:
        """A child of the call's span, sampled as it is (the default sampler's rule for a local parent)."""
        otel = sdk()
        self.attempts += 1
        parent = self.span.context
        attributes = {
            "gen_ai.operation.name": self.operation,
            "gen_ai.request.model": model,
            "gen_ai.provider.name": provider_name(target),
            "gomodel.provider": target.name,
            "gomodel.attempt": self.attempts,
        } if self.recording else {}
        context = otel.SpanContext(parent.trace_id, otel.ids.generate_span_id(), is_remote=False,
                                   trace_flags=parent.trace_flags, trace_state=parent.trace_state)
        return Span(context, parent, f"{self.operation} {model}", otel.CLIENT, time.time_ns(), attributes)

    @never_fails()
    def attempt_end(self, target: Target, model: str, status: int | None, error: str | None) -> None:
        """An attempt's outcome (UsageRecord.attempt); one without a span (circuit open) gets an empty one."""
        span, self.attempt_span = self.attempt_span, None
        if span is None:
            span = self._attempt_span(target, model)
        if self.recording:
            if status is not None:
                span.attributes["http.response.status_code"] = status
            if error is not None or (status is not None and status >= 400):
                span.fail(error or str(status))
        span.end()

    # -- the answer ------------------------------------------------------------------------------------------

    @never_fails()
    def chunk(self, chunk: dict[str, Any]) -> None:
        """A streamed chat chunk (every protocol's stream passes the adapters' chat chunks)."""
        if not self.recording:
            return
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            reason = choice.get("finish_reason")
            if isinstance(reason, str):
                self.finish_reasons.append(reason)
            if self.capture:
                delta = choice.get("delta")
                if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                    self._keep(delta["content"])

    @never_fails()
    def answer(self, body: bytes) -> None:
        """A whole answer as the client got it (chat, Messages or Responses JSON)."""
        if not self.recording:
            return
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return
        if not isinstance(data, dict):
            return
        if isinstance(data.get("id"), str):
            self.span.attributes["gen_ai.response.id"] = data["id"]
        for choice in data.get("choices") or ():  # chat
            if isinstance(choice, dict):
                if isinstance(choice.get("finish_reason"), str):
                    self.finish_reasons.append(choice["finish_reason"])
                message = choice.get("message")
                if self.capture and isinstance(message, dict) and isinstance(message.get("content"), str):
                    self._keep(message["content"])
        if isinstance(data.get("stop_reason"), str):  # Messages
            self.finish_reasons.append(data["stop_reason"])
        if data.get("object") == "response" and isinstance(data.get("status"), str):  # Responses
            self.finish_reasons.append(data["status"])
        if self.capture:
            for block in data.get("content") or ():  # Messages
                if isinstance(block, dict) and isinstance(block.get("text"), str):
                    self._keep(block["text"])
            for item in data.get("output") or ():  # Responses
                for part in (item.get("content") or ()) if isinstance(item, dict) else ():
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        self._keep(part["text"])

    def _keep(self, text: str) -> None:
        room = CONTENT_MAX_CHARS - self.output_chars
        if room > 0:
            self.output.append(text[:room])
        self.output_chars += len(text)

    # -- the end ---------------------------------------------------------------------------------------------

    @never_fails()
    def settled(self, event: Any) -> None:
        """The call's usage event (accounting.usage.events.StreamEvent): what the answer used and who answered."""
        if not self.recording:
            return
        attributes = {"gen_ai.usage.input_tokens": event.prompt_tokens,
                      "gen_ai.usage.output_tokens": event.completion_tokens,
                      "gomodel.usage_source": event.usage_source}
        if event.cached_tokens:
            attributes["gen_ai.usage.cache_read.input_tokens"] = event.cached_tokens
        if event.cache:
            attributes["gomodel.cache"] = event.cache
        self.span.attributes.update(attributes)

    @never_fails()
    def end(self, record: Any, status: int | None = None, error_type: str | None = None) -> None:
        """The call ended (its response sent, or refused): the outcome, then the span goes to the exporter.
        `record`: the call's UsageRecord (None when refused before it was made)."""
        if self.ended:
            return
        self.ended = True
        span = self.span
        if self.attempt_span is not None:  # cancelled mid-attempt (shutdown, hang-up)
            if self.recording:
                self.attempt_span.fail("cancelled")
            self.attempt_span.end()
            self.attempt_span = None
        if not self.recording:
            span.end()
            return
        attributes = span.attributes
        if record is not None:
            status, error_type = record.status, record.error_type
            target = record.target
            attributes["gen_ai.provider.name"] = provider_name(target)
            attributes["gomodel.provider"] = target.name
            attributes["gen_ai.response.model"] = record.model
            if record.ttft_ms is not None:
                # The conventions name it as a metric (gen_ai.server.time_to_first_token, seconds); here it is
                # an attribute of the call and, for a stream, an event at the moment the first bytes went out.
                attributes["gen_ai.server.time_to_first_token"] = record.ttft_ms / 1000
                if record.stream:
                    span.events.append(sdk().Event("gen_ai.first_token",
                                                   timestamp=span.start + int(record.ttft_ms * 1e6)))
        if status is not None:
            attributes["http.response.status_code"] = status
        if self.finish_reasons:
            attributes["gen_ai.response.finish_reasons"] = self.finish_reasons
        if self.capture and self.prompt is not None:
            try:
                attributes["gen_ai.input.messages"] = orjson.dumps(input_messages(self.prompt())).decode()
            except Exception:  # a prompt the gateway cannot show must not cost the span
                pass
            if self.output or self.finish_reasons:
                message: dict[str, Any] = {"role": "assistant",
                                           "parts": [{"type": "text", "content": "".join(self.output)}]}
                if self.finish_reasons:
                    message["finish_reason"] = self.finish_reasons[0]
                attributes["gen_ai.output.messages"] = orjson.dumps([message]).decode()
        if error_type is not None:
            span.fail(error_type)
        span.end()


def request_attributes(req: Request, principal: Principal, protocol: Exchange) -> dict[str, Any]:
    """What the call asked for (never a header, a key or, here, the prompt)."""
    body = protocol.body if isinstance(getattr(protocol, "body", None), dict) else {}
    attributes: dict[str, Any] = {
        "http.request.method": req.method,
        "http.route": protocol.endpoint,
        "gomodel.request_id": req.request_id,
        "gomodel.stream": protocol.stream,
    }
    if principal.tenant_slug is not None:
        attributes["gomodel.tenant"] = principal.tenant_slug
    for field, name in (("max_tokens", "gen_ai.request.max_tokens"),
                        ("max_completion_tokens", "gen_ai.request.max_tokens"),
                        ("max_output_tokens", "gen_ai.request.max_tokens"),
                        ("temperature", "gen_ai.request.temperature"),
                        ("top_p", "gen_ai.request.top_p")):
        value = body.get(field)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            attributes[name] = value
    return attributes


def provider_name(target: Target) -> str:
    return PROVIDER_NAMES.get(target.provider_type, target.provider_type)


def input_messages(prompt: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The prompt (the protocols' chat-like messages) in the conventions' shape: role and parts."""
    out = []
    for message in prompt:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        parts: list[dict[str, Any]] = []
        if isinstance(content, str):
            parts.append({"type": "text", "content": content})
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    parts.append({"type": "text", "content": part["text"]})
                elif isinstance(part, dict):  # images, audio, files: named, never copied
                    parts.append({"type": str(part.get("type", "unknown"))})
        for call in message.get("tool_calls") or ():
            if isinstance(call, dict) and isinstance(call.get("function"), dict):
                parts.append({"type": "tool_call", "id": call.get("id"), "name": call["function"].get("name"),
                              "arguments": call["function"].get("arguments")})
        out.append({"role": message.get("role", "user"), "parts": parts})
    return out
