"""OpenTelemetry traces of /v1 calls, following the GenAI semantic conventions: one SERVER span per call
(`{gen_ai.operation.name} {gen_ai.request.model}`) and one CLIENT span per upstream attempt (retries,
failover), whose context goes upstream as W3C `traceparent`/`tracestate`. A client's `traceparent` is continued.

Off unless OTEL_EXPORTER_OTLP_ENDPOINT (or …_TRACES_ENDPOINT) is set (settings.OTEL_TRACING): the pipeline
asks that one setting and touches nothing here otherwise; the SDK is imported, and its provider made, on the
first traced call. Spans leave through a BatchSpanProcessor (its own thread), never on the event loop.

Never in a span: an API key (the gateway's or a provider's), a header, an upstream URL (some carry keys), a
body; prompt and completion text only when OTEL_GENAI_CAPTURE_CONTENT=1 (gen_ai.input.messages /
gen_ai.output.messages, JSON as the conventions give it)."""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any

import orjson
from django.conf import settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

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

_provider: TracerProvider | None = None
_tracer: Tracer | None = None
_lock = threading.Lock()
# What a traced call uses of the API, bound once by tracer() (an import statement per call costs ~1 µs each).
_otel: Any = None


def tracer() -> Tracer:
    """The process's tracer, made on first use (the SDK reads OTEL_* from the environment then)."""
    global _provider, _tracer, _otel
    if _tracer is None:
        with _lock:
            if _tracer is None:
                _otel = _api()
                _provider = _new_provider()
                _tracer = _provider.get_tracer("gomodel.gateway")
    return _tracer


def _api() -> Any:
    from types import SimpleNamespace

    from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return SimpleNamespace(SERVER=SpanKind.SERVER, CLIENT=SpanKind.CLIENT, ERROR=Status(StatusCode.ERROR),
                           in_context=set_span_in_context, propagator=TraceContextTextMapPropagator())


def _new_provider() -> TracerProvider:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    named = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    provider = TracerProvider(resource=Resource.create({} if named else {SERVICE_NAME: "gomodel"}))
    # Endpoint, headers, timeout and compression from OTEL_EXPORTER_OTLP_*; queue and batch from OTEL_BSP_*.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def started() -> bool:
    return _provider is not None


def flush(timeout_ms: int = 5000) -> bool:
    """Send what is queued now (tests; shutdown)."""
    return _provider.force_flush(timeout_ms) if _provider is not None else True


def shutdown() -> None:
    """Flush and stop the exporter; the next traced call makes a new provider (the OTEL_* read again)."""
    global _provider, _tracer
    with _lock:
        provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


def begin(req: Request, principal: Principal, protocol: Exchange) -> CallTrace:
    return CallTrace(req, principal, protocol)


class CallTrace:
    """One call's span and its attempts' spans. Made by pipeline.Call when tracing is on; fed by the call
    (settle/end), send_upstream (attempt_start) and the usage record (attempt outcomes, streamed chunks)."""

    __slots__ = ("span", "recording", "operation", "model", "capture", "prompt", "attempt_span", "attempts",
                 "finish_reasons", "output", "output_chars", "ended")

    def __init__(self, req: Request, principal: Principal, protocol: Exchange) -> None:
        tracer_ = tracer()
        otel = _otel
        self.operation = OPERATIONS.get(protocol.endpoint, "passthrough")
        self.model = protocol.model
        carrier = {}
        for name in ("traceparent", "tracestate"):
            value = req.header(name.encode())
            if value is not None:
                carrier[name] = value
        parent = otel.propagator.extract(carrier) if carrier else None
        # The span starts when the request came in (its body read, its key checked), not when the Call is made.
        started = time.time_ns() - int((time.perf_counter() - req.started) * 1e9)
        # What a sampler may read goes in at the start (as the conventions ask); the rest only for a recorded span.
        self.span: Span = tracer_.start_span(f"{self.operation} {self.model}", context=parent, kind=otel.SERVER,
                                             start_time=started, attributes={
                                                 "gen_ai.operation.name": self.operation,
                                                 "gen_ai.request.model": self.model})
        # Not sampled (OTEL_TRACES_SAMPLER): the context still goes upstream; nothing else is worked out.
        self.recording = self.span.is_recording()
        if self.recording:
            self.span.set_attributes(request_attributes(req, principal, protocol))
        self.capture = settings.OTEL_GENAI_CAPTURE_CONTENT
        self.prompt = protocol.prompt if self.capture else None  # read at the end (lazy, as the record's)
        self.attempt_span: Span | None = None
        self.attempts = 0
        self.finish_reasons: list[str] = []
        self.output: list[str] = []
        self.output_chars = 0
        self.ended = False

    # -- upstream attempts -----------------------------------------------------------------------------------

    def attempt_start(self, target: Target, model: str, headers: dict[str, str]) -> dict[str, str]:
        """A span for the attempt about to be sent; returns the headers to send, with its traceparent."""
        span = self._attempt_span(target, model)
        carrier = dict(headers)  # the built request may be memoised (response cache): never changed in place
        _otel.propagator.inject(carrier, context=_otel.in_context(span))
        self.attempt_span = span
        return carrier

    def _attempt_span(self, target: Target, model: str) -> Span:
        self.attempts += 1
        attributes: dict[str, Any] | None = {
            "gen_ai.operation.name": self.operation,
            "gen_ai.request.model": model,
            "gen_ai.provider.name": provider_name(target),
            "gomodel.provider": target.name,
            "gomodel.attempt": self.attempts,
        } if self.recording else None
        return tracer().start_span(f"{self.operation} {model}", context=_otel.in_context(self.span),
                                   kind=_otel.CLIENT, attributes=attributes)

    def attempt_end(self, target: Target, model: str, status: int | None, error: str | None) -> None:
        """An attempt's outcome (UsageRecord.attempt); one without a span (circuit open) gets an empty one."""
        span, self.attempt_span = self.attempt_span, None
        if span is None:
            span = self._attempt_span(target, model)
        if self.recording:
            if status is not None:
                span.set_attribute("http.response.status_code", status)
            if error is not None or (status is not None and status >= 400):
                _failed(span, error or str(status))
        span.end()

    # -- the answer ------------------------------------------------------------------------------------------

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
            self.span.set_attribute("gen_ai.response.id", data["id"])
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
        self.span.set_attributes(attributes)

    def end(self, record: Any, status: int | None = None, error_type: str | None = None) -> None:
        """The call ended (its response sent, or refused): the outcome, then the span goes to the exporter.
        `record`: the call's UsageRecord (None when refused before it was made)."""
        if self.ended:
            return
        self.ended = True
        span = self.span
        if self.attempt_span is not None:  # cancelled mid-attempt (shutdown, hang-up)
            if self.recording:
                _failed(self.attempt_span, "cancelled")
            self.attempt_span.end()
            self.attempt_span = None
        if not self.recording:
            span.end()
            return
        attributes: dict[str, Any] = {}
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
                    start = getattr(span, "start_time", None) or time.time_ns()
                    span.add_event("gen_ai.first_token", timestamp=start + int(record.ttft_ms * 1e6))
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
        span.set_attributes(attributes)
        if error_type is not None:
            _failed(span, error_type)
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


def _failed(span: Span, error_type: str) -> None:
    span.set_attribute("error.type", error_type)
    span.set_status(_otel.ERROR)


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
