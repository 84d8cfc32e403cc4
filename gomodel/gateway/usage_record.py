"""What one /v1 request turns into on the usage stream."""

import time
from typing import TYPE_CHECKING

from accounting.budgets import counters as budgets
from accounting.usage import estimate
from accounting.usage.events import StreamEvent
from providers.base import Target, Usage

if TYPE_CHECKING:
    from .limits import Admission


class UsageRecord:
    __slots__ = ("request_id", "principal", "target", "requested_model", "model", "endpoint", "stream",
                 "started", "status", "error_type", "usage", "ttft_ms", "relayed", "relayed_chars", "_messages",
                 "attempts", "budget", "estimate_missing", "cache", "labels", "user", "trace",
                 "images", "audio_seconds", "characters", "quota", "_protocol")

    def __init__(self, req, target: Target, requested_model: str, model: str, endpoint: str, stream: bool,
                 messages):
        """`req`: the call (its request_id, auth and started); `messages`: the prompt, or a function that
        makes it (read only when usage must be estimated)."""
        self.request_id = req.request_id
        self.principal = req.auth
        self.started = req.started
        self.target = target
        self.requested_model = requested_model
        self.model = model
        self.endpoint = endpoint
        self.stream = stream
        self._messages = messages
        self.status = 200
        self.error_type: str | None = None
        self.usage: Usage | None = None
        self.ttft_ms: float | None = None
        self.relayed: list[str] = []  # at most estimate.MAX_CHARS characters in all
        self.relayed_chars = 0
        self.attempts: list[dict] = []
        self.budget = getattr(req, "budget", None)
        self.trace = getattr(req, "trace", None)  # the call's tracing.CallTrace when tracing is on
        self.estimate_missing = True  # False: an answer without usage is billed as none (passthrough)
        self.cache: str | None = None  # "exact": answered from the response cache (no upstream call, cost 0)
        self.labels: dict[str, str] = {}  # the call's attribution (gomodel/gateway/attribution.py)
        self.user = ""
        # A media call's units (priced per image / second / character where a price exists): set by its protocol.
        self.images = 0
        self.audio_seconds = 0.0
        self.characters = 0
        # The answering target's provider-quota claim (gateway/quotas.py); the Call settles it.
        self.quota: Admission | None = None
        # The plug-in whose estimate a provider's TPM quota reserves (held, not the Call: no reference cycle per call).
        self._protocol = getattr(req, "protocol", None)

    def quota_tokens(self) -> int:
        """What a provider's TPM quota reserves for this call: the estimate the key's TPM takes (prompt + the most
        it may generate); asked only of a target with a quota."""
        protocol = self._protocol
        return protocol.prompt_tokens() + protocol.output_tokens() if protocol is not None and protocol.billed else 0

    @property
    def messages(self) -> list:
        if callable(self._messages):
            self._messages = self._messages()
        return self._messages

    def attempt(self, target: Target, model: str, status: int | None, error: str | None, pooled: bool = False):
        """One upstream try (failover and retries make several); the event names the last one. A try with one key
        of a pool names the key by its label (which key answered 429 or 401)."""
        attempt = {"provider": target.name, "model": model, "status": status, "error": error}
        if pooled:
            attempt["key"] = target.key_label
        self.attempts.append(attempt)
        if self.trace is not None:
            self.trace.attempt_end(target, model, status, error)

    def first_byte(self) -> None:
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
        if self.trace is not None:
            self.trace.chunk(chunk)
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
            if (self.status == 200 and self.estimate_missing) or self.relayed:
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
            provider_key=self.target.key_label,
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
            cache=self.cache,
            cost="0" if self.cache else None,
            cost_source="cache" if self.cache else None,
            labels=self.labels,
            user=self.user,
            images=self.images,
            audio_seconds=self.audio_seconds,
            characters=self.characters,
        )
