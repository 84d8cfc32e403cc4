"""One call's admission and settlement, for every endpoint.

Entering a `Call` applies, in this order and once: the allow-lists (403, nothing counted), the response
cache lookup (a key with a cache: a hit reserves no budget and no tokens, it costs nothing, but counts against
the request and concurrency limits), the budget reservation (429 budget_exceeded: spent, or the prompt alone
costs more than is left; else the call's priced estimate is held as in flight), and the rate limits (429 with
the x-ratelimit-* headers; TPM reserves the prompt plus the most the call may generate). Leaving it — by an
answer, an upstream error, the deadline, a client hang-up, cancellation at shutdown — settles everything, first
and before any await: the usage event (once, if an upstream was tried or the cache answered), priced into the
budget counters in the MULTI that also clears the reservation, the TPM reconciled to what was used, the
concurrency slot freed, the metrics.
"""

import asyncio
import logging
from collections.abc import Callable
from types import TracebackType
from typing import cast

from django.conf import settings

from accounting.budgets.counters import Budget
from accounting.limits.allowlists import EMPTY
from providers.adapter_protocol import ChatAdapter
from providers.base import Target, UpstreamRequest

from .. import metrics, prompt_cache, tracing
from ..attribution import NONE, Attribution
from ..auth import Principal
from ..budgets import Reservation, StreamGuard, charge, release, reserve
from ..errors import GatewayError
from ..http import Request
from ..limits import Admission, allowed_chain
from ..response_cache import CachePolicy, CallCache
from ..runtime import Runtime
from ..usage_record import UsageRecord
from .protocol import Exchange

log = logging.getLogger(__name__)


class Call:
    __slots__ = ("req", "runtime", "auth", "protocol", "chain", "record", "budget", "admission", "request_id",
                 "started", "cache", "attribution", "trace")

    def __init__(self, req: Request, runtime: Runtime, principal: Principal, protocol: Exchange,
                 chain: list[tuple[Target, str]], attribution: Attribution = NONE) -> None:
        self.req = req
        self.runtime = runtime
        self.auth = principal
        self.protocol = protocol
        self.chain = chain
        self.request_id = req.request_id
        self.started = req.started
        self.record: UsageRecord | None = None  # set by __aenter__
        self.budget: Reservation | None = None
        self.admission: Admission | None = None
        self.cache: CallCache | None = None  # when the key has a response cache
        self.attribution = attribution  # labels and end user, checked (attribution.py)
        # The call's span (tracing.py); None, and nothing else is asked of tracing, when it is off.
        self.trace = tracing.begin(req, principal, protocol) if settings.OTEL_TRACING else None

    async def __aenter__(self) -> "Call":
        try:
            return await self._enter()
        except BaseException as error:
            if self.trace is not None:  # refused (403, 429): its span ends here, as __aexit__ is not called
                refusal = error if isinstance(error, GatewayError) else None
                self.trace.end(None, refusal.status if refusal else 500,
                               refusal.type if refusal else "internal_error")
            raise

    async def _enter(self) -> "Call":
        protocol, principal, runtime = self.protocol, self.auth, self.runtime
        if principal.allowed_models is not EMPTY or principal.tenant_allowed_models is not EMPTY:
            self.chain = allowed_chain(principal, protocol.model, protocol.provider_hint, self.chain)
        chain = self.chain
        target, model = chain[0]
        # The record reads the prompt only when it needs an estimate (protocol.prompt is lazy).
        self.record = UsageRecord(self, target, protocol.model, model, protocol.endpoint, protocol.stream,
                                  protocol.prompt)
        self.record.labels, self.record.user = self.attribution.labels, self.attribution.user
        if principal.cache is not None and protocol.cacheable:
            self.cache = await runtime.cache.begin(self.req, principal, protocol, chain, self.upstream_request)
            if self.cache.hit is not None:
                self.record.cache = "exact"
            elif cast(CachePolicy, principal.cache).mode == "semantic" and self.cache.key is not None \
                    and settings.SEMANTIC_CACHE_EMBED_MODEL:
                await self._semantic(principal, protocol, target, model)
        if self.cache is None:
            await self._admit(principal, runtime, protocol, target, model)
            return self
        try:
            await self._admit(principal, runtime, protocol, target, model)
        except BaseException:
            self.cache.finish()  # refused: the identical calls waiting on this one go upstream themselves
            raise
        finally:  # on the answer, and on a refusal too
            self.req.extra_headers = [*self.req.extra_headers, (b"x-gomodel-cache", self.cache.label)]
        return self

    async def _semantic(self, principal: Principal, protocol: Exchange, target: Target, model: str) -> None:
        """An exact miss of a semantic policy: a similar request's answer (imported here: a call without a
        semantic policy walks none of it)."""
        from ..semantic_cache.lookup import HIT, lookup

        cache = cast(CallCache, self.cache)
        try:
            hit = await lookup(self, self.req, principal, protocol, target, model)
        except BaseException:
            cache.finish()  # cancelled while leading: the calls waiting on this one go upstream themselves
            raise
        if hit is not None:
            cache.hit, cache.label = hit, HIT
            cast(UsageRecord, self.record).cache = "semantic"

    async def _admit(self, principal: Principal, runtime: Runtime, protocol: Exchange, target: Target,
                     model: str) -> None:
        record = cast(UsageRecord, self.record)  # __aenter__ made it
        user = self.attribution.user if principal.user_limited else ""  # the end user's own limits
        labels = self.attribution.labels if principal.label_limits else None  # its labels' limits
        # The end user's own budget (the tenant's budget of each end user), beside the key's and the tenant's.
        own: tuple[Budget, ...] = (cast(Budget, principal.user_budget).for_user(self.attribution.user),) \
            if principal.user_budget is not None and self.attribution.user else ()
        if principal.label_budgets:  # and the tenant's budget of each label value the call carries
            carried = self.attribution.labels
            own += tuple(budget for name, value, budget in principal.label_budgets if carried.get(name) == value)
        if not (principal.budgets or principal.key_limited or principal.tenant_limited or user or labels or own):
            return
        if record.cache is not None:  # a hit: nothing to reserve; the request and its slot still count
            self.admission = await runtime.limits.admit(self.req, principal, 0, user, labels)
            return
        output = protocol.output_tokens() if protocol.billed else 0
        prompt = protocol.prompt_tokens() if protocol.billed else 0
        self.budget = record.budget = await reserve(runtime, principal, self.request_id, target, model, prompt,
                                                         output, protocol.stream, own,
                                                         protocol.units() if protocol.billed else (0, 0))
        try:
            self.admission = await runtime.limits.admit(self.req, principal, prompt + output, user, labels)
        except BaseException:
            if self.budget is not None:
                release(runtime, self.budget)
            raise

    @property
    def build(self) -> Callable[[ChatAdapter, Target, str], UpstreamRequest]:
        """How the upstream request is built: `upstream_request`, memoised by the cache (its key was made from it)."""
        return self.cache.build if self.cache is not None else self.upstream_request

    def upstream_request(self, adapter: ChatAdapter, target: Target, model: str) -> UpstreamRequest:
        """The protocol's request for this target, with the provider's prompt-cache directives planned on it
        (prompt_cache.py: per target, so they never reach a target of another format)."""
        upstream = self.protocol.build(adapter, target, model)
        body = upstream.body
        # Only the protocols that take JSON prompts as the gateway reads them (cacheable: chat, embeddings,
        # Messages, Responses); a passthrough or media body goes as the client sent it.
        if body is not None and len(body) >= prompt_cache.MIN_BODY_BYTES and self.protocol.cacheable \
                and settings.PROMPT_CACHE_PLANNING:
            upstream = prompt_cache.plan(upstream, target, model, self.auth.tenant_id)
        return upstream

    def guard(self) -> StreamGuard | None:
        """The budget guard of a stream (None when the caller has no budget or the model no price)."""
        return StreamGuard.maybe(self, self.runtime)

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        tb: TracebackType | None) -> bool:
        req, record = self.req, cast(UsageRecord, self.record)  # entered: set
        handled = isinstance(error, GatewayError)
        if handled:
            error = cast(GatewayError, error)
            record.status, record.error_type = error.status, error.type
        elif isinstance(error, Exception):  # a bug: the app answers 500; the event says so too
            record.status, record.error_type = 500, "internal_error"
        room = self._settle()
        if self.trace is not None:
            self.trace.end(record)
        if handled and not record.attempts:
            metrics.refused_line(req, self.auth, error, self.attribution)
        if handled and not req.response_started:
            await req.respond_error(cast(GatewayError, error))
        if room is not None:  # backpressure: Redis is USAGE_WRITE_QUEUE_MAX events behind
            await room
        return handled

    def _settle(self) -> "asyncio.Future[None] | None":
        """Everything a call owes when it ends, without an await: a cancelled call (server shutdown) cannot
        count on the loop for long."""
        runtime, record, admission = self.runtime, cast(UsageRecord, self.record), self.admission  # entered
        room = None
        if self.cache is not None:
            self.cache.finish()
        # A call refused before any upstream attempt (input the provider cannot take) is bad input like
        # any other 400: it records nothing.
        if (record.attempts or record.cache) and self.protocol.billed:
            event = record.event()
            if self.trace is not None:
                self.trace.settled(event)
            if self.budget is not None:
                try:
                    charge(runtime, record, event)
                except Exception:  # pricing must never cost an event (the drain prices it then)
                    log.exception("could not price usage event %s for its budget", event.request_id)
            try:
                metrics.observe_event(event, runtime.registry.knows)  # unknown models: "other"
            except Exception:  # metrics must never cost an event
                log.exception("could not count usage event %s in the metrics", event.request_id)
            try:
                metrics.access_line(event, self.cache.label if self.cache is not None else None)
            except Exception:  # the access log must never cost an event
                log.exception("could not write the access log line of %s", event.request_id)
            if admission is not None:
                admission.used = 0 if record.cache else event.total_tokens  # a hit is not counted against TPM
            if record.quota is not None:
                record.quota.used = event.total_tokens
            room = runtime.usage.emit(event)
        if admission is not None:
            admission.finish()  # reconciles the TPM reservation and frees the slot (queued, not awaited)
        if record.quota is not None:
            record.quota.finish()  # the provider quota's claim, likewise
        if self.budget is not None:
            release(runtime, self.budget)  # unless the event's MULTI clears it (charge marked it settled)
        return room
