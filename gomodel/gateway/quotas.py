"""Provider and model quotas: the provider account's own limits (RPM, TPM, requests in flight), per provider config
and per `provider/model`, shared by every tenant, so the gateway stays under what the account may send.

send_upstream (upstream.py) asks `acquire` before it tries a target whose config has a quota (`Target.quota`; a
target without one costs nothing here, not even an import on the warm path). The check is the rate limits' own
GCRA script (accounting/limits/ratelimits.py, scopes "provider" and "model"), in the same per-tick BATCH, so it is
exact across every gateway process sharing the Redis. Over a quota, a call waits for room up to
QUOTA_QUEUE_MAX_WAIT seconds, first come first served within a process (one lock per target and model: only the
head of the line asks Redis again, when the GCRA says the next unit fits), at most QUOTA_QUEUE_MAX waiting per
line (beyond it, no waiting); then the caller fails over to the chain's next target, or answers 429
provider_quota_exceeded. The admitted claim is the Call's to settle (pipeline/call.py): TPM reconciled to the
reported usage, the slot freed, however the call ends.
"""

import asyncio
import math
from dataclasses import dataclass, field

from django.conf import settings
from prometheus_client import Counter

from accounting.limits.ratelimits import Outcome, Scope, current_usage, model_scope, provider_scope
from providers.base import Target

from .errors import RATE_LIMIT, GatewayError
from .limits import DIMENSION_TEXT, Admission

QUOTA_REFUSED = Counter("gomodel_provider_quota_exceeded", "Upstream attempts refused by a provider or model "
                        "quota after waiting (the call failed over or answered 429).", ["scope", "limit"])
CONCURRENCY_POLL_S = 0.05  # no clock says when a slot frees: the head of the line asks again this often


@dataclass
class Line:
    """The calls of this process waiting for one target's quota room, in arrival order (asyncio.Lock is FIFO)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: int = 0


LINES: dict[tuple[int, str], Line] = {}


def scopes_of(target: Target, model: str) -> list[Scope]:
    """The quota scopes a call to `target`/`model` counts against: the config's own, then the model's."""
    quota = target.quota
    if quota is None:
        return []
    prefix = settings.LIMITS_PREFIX
    found = []
    if quota.own:
        found.append(provider_scope(prefix, target.id, target.name, quota.rpm, quota.tpm, quota.concurrency))
    entry = quota.of_model(model)
    if entry is not None:
        found.append(model_scope(prefix, target.id, target.name, model, *entry[1:]))
    return found


def refusal(outcome: Outcome | None, scope: Scope, dimension: str, retry_ms: int) -> GatewayError:
    retry_ms = max(retry_ms, 1)
    seconds = math.ceil(retry_ms / 1000)
    QUOTA_REFUSED.labels(scope.kind, dimension).inc()
    return GatewayError(429, RATE_LIMIT, f"The gateway's quota for {scope.label} ({DIMENSION_TEXT[dimension]}: "
                        f"{scope.limit(dimension)}, shared by every tenant) is reached; retry in {seconds} s.",
                        code="provider_quota_exceeded",
                        headers=[(b"retry-after", str(seconds).encode()), (b"retry-after-ms", str(retry_ms).encode())])


async def acquire(runtime, target: Target, model: str, attempt_id: str, tokens: int) -> Admission | GatewayError | None:
    """Room under the target's quotas for one attempt: its Admission (settled by the caller), the 429 to fail over
    with or answer, or None (no quota for this model, or Redis down with LIMITS_FAIL_MODE=open)."""
    scopes = scopes_of(target, model)
    if not scopes:
        return None
    limiter = runtime.limits
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(0.0, settings.QUOTA_QUEUE_MAX_WAIT)
    line = LINES.setdefault((target.id, model), Line())
    outcome = None
    if not line.waiting and not line.lock.locked():  # nobody ahead: one try before queueing
        outcome = await limiter.admit_scopes(attempt_id, scopes, tokens)
        if outcome is None or outcome.allowed:
            return _held(limiter, attempt_id, scopes, outcome)
    if line.waiting >= settings.QUOTA_QUEUE_MAX or deadline <= loop.time():
        return _refused(outcome, scopes)
    line.waiting += 1
    try:
        try:
            await asyncio.wait_for(line.lock.acquire(), deadline - loop.time())
        except TimeoutError:
            return _refused(outcome, scopes)
        try:
            while True:
                if outcome is not None:  # wait as long as the GCRA says (a slot: poll), never past the deadline
                    pause = CONCURRENCY_POLL_S if outcome.denied == "concurrency" else outcome.retry_ms / 1000
                    left = deadline - loop.time()
                    if left <= 0 or pause > left:
                        return _refused(outcome, scopes)
                    await asyncio.sleep(pause)
                outcome = await limiter.admit_scopes(attempt_id, scopes, tokens)
                if outcome is None or outcome.allowed:
                    return _held(limiter, attempt_id, scopes, outcome)
        finally:
            line.lock.release()
    finally:
        line.waiting -= 1


def _held(limiter, attempt_id: str, scopes: list[Scope], outcome: Outcome | None) -> Admission | None:
    if outcome is None:  # Redis down, fail-open: nothing was counted
        return None
    admission = Admission(limiter, attempt_id, scopes)
    if any(s.concurrency is not None for s in scopes):
        limiter.in_flight[attempt_id] = admission  # its slot's expiry kept alive by the heartbeat
    return admission


def _refused(outcome: Outcome | None, scopes: list[Scope]) -> GatewayError:
    if outcome is None or outcome.denied_scope is None:  # the line was full before this call asked Redis
        scope = scopes[0]
        dimension = next(d for d in ("requests", "tokens", "concurrency") if scope.limit(d) is not None)
        return refusal(None, scope, dimension, 1000)
    return refusal(outcome, outcome.denied_scope, outcome.denied, outcome.retry_ms)


def current_use(config) -> dict:
    """A provider config's quotas and what is left of each now, read from Redis without consuming anything (the
    admin and the management API): {"provider": report or None, "models": {model: report}}."""
    quota = config.quota
    if quota is None:
        return {"provider": None, "models": {}}
    prefix = settings.LIMITS_PREFIX
    scopes = [provider_scope(prefix, config.pk, config.name, quota.rpm, quota.tpm, quota.concurrency)]
    scopes += [model_scope(prefix, config.pk, config.name, *entry) for entry in quota.models]
    reports = current_usage(scopes)
    return {"provider": reports[0] if quota.own else None,
            "models": {entry[0]: report for entry, report in zip(quota.models, reports[1:])}}
