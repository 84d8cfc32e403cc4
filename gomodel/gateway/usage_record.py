"""What one /v1 request turns into on the usage stream."""

import contextlib
import logging
import time

from accounting.budgets import counters as budgets
from accounting.usage import estimate
from accounting.usage.events import StreamEvent
from providers.base import Target, Usage

from . import metrics
from .budgets import charge

log = logging.getLogger(__name__)


class UsageRecord:
    __slots__ = ("request_id", "principal", "target", "requested_model", "model", "endpoint", "stream",
                 "started", "status", "error_type", "usage", "ttft_ms", "relayed", "relayed_chars", "messages",
                 "attempts", "budget")

    def __init__(self, req, target: Target, requested_model: str, model: str, endpoint: str, stream: bool,
                 messages: list):
        self.request_id = req.request_id
        self.principal = req.auth
        self.started = req.started
        self.target = target
        self.requested_model = requested_model
        self.model = model
        self.endpoint = endpoint
        self.stream = stream
        self.messages = messages
        self.status = 200
        self.error_type = None
        self.usage: Usage | None = None
        self.ttft_ms: float | None = None
        self.relayed: list[str] = []  # at most estimate.MAX_CHARS characters in all
        self.relayed_chars = 0
        self.attempts: list[dict] = []
        self.budget = getattr(req, "budget", None)

    def attempt(self, target: Target, model: str, status: int | None, error: str | None):
        """One upstream try (failover and retries make several); the event names the last one."""
        self.attempts.append({"provider": target.name, "model": model, "status": status, "error": error})

    def first_byte(self):
        if self.ttft_ms is None:
            self.ttft_ms = round((time.perf_counter() - self.started) * 1000, 3)

    def relay_completion(self, completion: dict):
        """A non-streaming chat completion without usage: keep its messages' text, as a stream's would be."""
        for choice in completion.get("choices") or ():
            if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
                self.relay({"choices": [{"delta": choice["message"]}]})

    def relay(self, chunk: dict):
        """Keep the text a client was sent, to estimate usage should the stream end without it: the
        first estimate.MAX_CHARS characters and the length of all of it."""
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                continue
            for field in ("content", "reasoning_content"):
                if isinstance(delta.get(field), str):
                    self.relay_text(delta[field])
            for call in delta.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    for field in ("name", "arguments"):
                        if isinstance(function.get(field), str):
                            self.relay_text(function[field])

    def relay_text(self, text: str):
        """Keep `text` as sent to the client (bounded: see relay)."""
        room = estimate.MAX_CHARS - self.relayed_chars
        if room > 0:
            self.relayed.append(text[:room])
        self.relayed_chars += len(text)

    def event(self) -> StreamEvent:
        usage = self.usage
        source = "reported"
        pending = None
        if usage is None:
            if self.status == 200 or self.relayed:
                # Generated but never reported (hang-up, broken stream): bill what was produced. No
                # tokenizing here, on the event loop: the drain counts a bounded `pending` estimate.
                prompt, completion, pending = estimate.pending(self.messages, self.relayed, self.relayed_chars,
                                                               self.model)
                usage = Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)
                source = "estimated"
            else:
                usage = Usage()
                source = "none"
        principal = self.principal
        return StreamEvent(
            request_id=self.request_id,
            ts=budgets.clock().timestamp(),  # one clock with the budget periods (tests move it)
            tenant_id=principal.tenant_id,
            tenant=principal.tenant_slug,
            api_key_id=principal.key_id,
            api_key_prefix=principal.key_prefix,
            provider_id=self.target.id,
            provider=self.target.name,
            provider_type=self.target.provider_type,
            requested_model=self.requested_model,
            model=self.model,
            endpoint=self.endpoint,
            status=self.status,
            error_type=self.error_type,
            stream=self.stream,
            latency_ms=round((time.perf_counter() - self.started) * 1000, 3),
            ttft_ms=self.ttft_ms,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
            cached_tokens=usage.cached_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            reported_cost=usage.reported_cost,
            usage_source=source,
            attempts=self.attempts,
            estimate=pending,
        )


@contextlib.asynccontextmanager
async def recorded(req, runtime, record: UsageRecord):
    """Answer a GatewayError in the envelope (unless the response already started), then emit the
    request's one usage event if it reached an upstream. The event is queued before any await, so a
    request cancelled here (server shutdown) still records what it cost; the request never waits on Redis
    (the usage writer's flusher sends it), unless Redis is USAGE_WRITE_QUEUE_MAX events behind."""
    from .errors import GatewayError

    try:
        yield record
    except GatewayError as err:
        record.status, record.error_type = err.status, err.type
        if not req.response_started:
            await req.respond_error(err)
    finally:
        # A request refused before any upstream attempt (input the provider cannot take) is bad
        # input like any other 400: it records nothing.
        if record.attempts:
            event = record.event()
            try:
                charge(runtime, record, event)
            except Exception:  # pricing must never cost an event (the drain prices it then)
                log.exception("could not price usage event %s for its budget", event.request_id)
            try:
                metrics.observe_event(event, runtime.registry.knows)  # unknown models: "other"
            except Exception:  # metrics must never cost an event
                log.exception("could not count usage event %s in the metrics", event.request_id)
            if req.admission is not None:  # reconcile the tokens the rate limiter reserved, now
                req.admission.used = event.total_tokens
                req.admission.finish()
            room = runtime.usage.emit(event)
            if room is not None:  # backpressure: Redis is USAGE_WRITE_QUEUE_MAX events behind
                await room
