"""One call's admission and settlement, for every endpoint.

Entering a `Call` applies, in this order and once: the allow-lists (403, nothing counted), the budget
reservation (429 budget_exceeded: spent, or the prompt alone costs more than is left; else the call's
priced estimate is held as in flight), and the rate limits (429 with the x-ratelimit-* headers; TPM
reserves the prompt plus the most the call may generate). Leaving it — by an answer, an upstream error,
the deadline, a client hang-up, cancellation at shutdown — settles everything, first and before any await:
the usage event (once, if an upstream was tried), priced into the budget counters in the MULTI that also
clears the reservation, the TPM reconciled to what was used, the concurrency slot freed, the metrics.
"""

import asyncio
import logging
from types import TracebackType
from typing import cast

from accounting.limits.allowlists import EMPTY
from providers.base import Target

from .. import metrics
from ..auth import Principal
from ..budgets import Reservation, StreamGuard, charge, release, reserve
from ..errors import GatewayError
from ..http import Request
from ..limits import Admission, allowed_chain
from ..runtime import Runtime
from ..usage_record import UsageRecord
from .protocol import Exchange

log = logging.getLogger(__name__)


class Call:
    __slots__ = ("req", "runtime", "auth", "protocol", "chain", "record", "budget", "admission", "request_id",
                 "started")

    def __init__(self, req: Request, runtime: Runtime, principal: Principal, protocol: Exchange,
                 chain: list[tuple[Target, str]]) -> None:
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

    async def __aenter__(self) -> "Call":
        protocol, principal, runtime = self.protocol, self.auth, self.runtime
        if principal.allowed_models is not EMPTY or principal.tenant_allowed_models is not EMPTY:
            self.chain = allowed_chain(principal, protocol.model, protocol.provider_hint, self.chain)
        chain = self.chain
        target, model = chain[0]
        # The record reads the prompt only when it needs an estimate (protocol.prompt is lazy).
        self.record = UsageRecord(self, target, protocol.model, model, protocol.endpoint, protocol.stream,
                                  protocol.prompt)
        governed = principal.budgets or principal.rpm_limit is not None or principal.tpm_limit is not None \
            or principal.concurrency_limit is not None or principal.tenant_rpm_limit is not None \
            or principal.tenant_tpm_limit is not None or principal.tenant_concurrency_limit is not None
        if not governed:
            return self
        output = protocol.output_tokens() if protocol.billed else 0
        prompt = protocol.prompt_tokens() if protocol.billed else 0
        self.budget = self.record.budget = await reserve(runtime, principal, self.request_id, target, model, prompt,
                                                         output, protocol.stream)
        try:
            self.admission = await runtime.limits.admit(self.req, principal, prompt + output)
        except BaseException:
            if self.budget is not None:
                release(runtime, self.budget)
            raise
        return self

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
        if handled and not record.attempts:
            metrics.refused_line(req, self.auth, error)
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
        # A call refused before any upstream attempt (input the provider cannot take) is bad input like
        # any other 400: it records nothing.
        if record.attempts and self.protocol.billed:
            event = record.event()
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
                metrics.access_line(event)
            except Exception:  # the access log must never cost an event
                log.exception("could not write the access log line of %s", event.request_id)
            if admission is not None:
                admission.used = event.total_tokens
            room = runtime.usage.emit(event)
        if admission is not None:
            admission.finish()  # reconciles the TPM reservation and frees the slot (queued, not awaited)
        if self.budget is not None:
            release(runtime, self.budget)  # unless the event's MULTI clears it (charge marked it settled)
        return room
