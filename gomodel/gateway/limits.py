"""Rate limits (requests/tokens per minute, requests in flight; per key and per tenant) and model
allow-lists, on the request path.

The pipeline's `Call` (pipeline/call.py) uses both once it knows where a call would go: `allowed_chain` drops the
targets the key or tenant may not call (403 if none is left), then `Limiter.admit` admits the call in ONE Redis round
trip (accounting/ratelimits.py's script, by EVALSHA; the calls of one event-loop tick share that call), answering 429
when a limit is reached. When the call ends, however it ends, `Admission.finish` sets the token reservation to the
reported usage and frees the concurrency slot (queued for the next batch, never awaited by the answer). Slots of
calls still running are kept alive by one BEAT per LIMITS_SLOT_TTL/4 per process; a crashed process's slots expire
after LIMITS_SLOT_TTL.

The tokens reserved against TPM are the call's prompt estimate (chars/4) plus max_tokens (or
LIMITS_DEFAULT_MAX_TOKENS). A key without limits makes no Redis call at all. The x-ratelimit-* headers (OpenAI's
names) name the scope (key or tenant) with the least left.
"""

import asyncio
import logging
import math
import time

from django.conf import settings
from prometheus_client import Counter
from redis.exceptions import ConnectionError as RedisConnectionError

from accounting.limits.allowlists import permitted
from accounting.limits.ratelimits import (
    ADMIT,
    BATCH,
    BEAT,
    WINDOW_MS,
    Outcome,
    Scope,
    admit_args,
    key_scope,
    label_scope,
    read_outcome,
    report,
    tenant_scope,
    user_scope,
)
from accounting.usage.estimate import estimate_prompt_tokens

from .errors import PERMISSION, RATE_LIMIT, GatewayError

log = logging.getLogger(__name__)

REDIS_ERRORS = Counter("gomodel_limits_redis_errors", "Rate-limit checks Redis did not answer in time "
                       "(served anyway with LIMITS_FAIL_MODE=open, refused with closed).")
LIMITED = Counter("gomodel_rate_limited", "Requests refused by a rate limit.", ["scope", "limit"])
NOT_ALLOWED = Counter("gomodel_model_not_allowed", "Requests refused by a model allow-list.")

DIMENSION_TEXT = {"requests": "requests-per-minute", "tokens": "tokens-per-minute",
                  "concurrency": "concurrent-requests"}
RETRY_IN_FLIGHT_MS = 1000  # a concurrency refusal: no clock says when a slot frees; try again in a second


def chat_tokens(body: dict) -> int:
    """Tokens a chat request reserves against TPM: its prompt, roughly (chars/4: cheap, no tokenizer on the
    event loop), plus max_tokens or LIMITS_DEFAULT_MAX_TOKENS. Reconciled with the real usage at the end."""
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if not isinstance(limit, int) or limit < 0:
        limit = settings.LIMITS_DEFAULT_MAX_TOKENS
    return estimate_prompt_tokens(body.get("messages") or [], "") + limit


def scopes_of(principal, user: str = "", labels: dict[str, str] | None = None) -> list[Scope]:
    """The counted scopes of a call: its key's, its tenant's, its end user's when it names one, and those of
    its labels the tenant limits."""
    prefix = settings.LIMITS_PREFIX
    found = []
    if principal.key_limited:
        found.append(key_scope(prefix, principal.tenant_id, principal.key_id, principal.rpm_limit,
                               principal.tpm_limit, principal.concurrency_limit))
    if principal.tenant_limited:
        found.append(tenant_scope(prefix, principal.tenant_id, principal.tenant_rpm_limit,
                                  principal.tenant_tpm_limit, principal.tenant_concurrency_limit))
    if user and principal.user_limited:
        found.append(user_scope(prefix, principal.tenant_id, user, principal.user_rpm_limit,
                                principal.user_tpm_limit))
    if labels:
        for name, value, rpm, tpm in principal.label_limits:
            if labels.get(name) == value:
                found.append(label_scope(prefix, principal.tenant_id, f"{name}:{value}", rpm, tpm))
    return found


def duration(ms: int) -> str:
    """OpenAI's reset format: '20ms', '6s', '1m30s'."""
    if ms < 1000:
        return f"{ms}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m" + (f"{rest:.3f}".rstrip("0").rstrip(".") or "0") + "s"


def rate_headers(outcome: Outcome) -> list[tuple[bytes, bytes]]:
    headers = []
    for dimension in ("requests", "tokens"):
        tightest = None
        for state in outcome.state:
            entry = state[dimension]
            if entry is not None and (tightest is None or entry["remaining"] < tightest["remaining"]):
                tightest = entry
        if tightest is not None:
            headers += [(b"x-ratelimit-limit-" + dimension.encode(), str(tightest["limit"]).encode()),
                        (b"x-ratelimit-remaining-" + dimension.encode(), str(tightest["remaining"]).encode()),
                        (b"x-ratelimit-reset-" + dimension.encode(), duration(tightest["reset_ms"]).encode())]
    return headers


def refusal(outcome: Outcome) -> GatewayError:
    """The 429; the x-ratelimit-* headers travel on the request (`req.extra_headers`), as on any answer."""
    scope, dimension = outcome.denied_scope, outcome.denied
    assert scope is not None  # asked only of a refused outcome, which names its scope
    retry_ms = max(outcome.retry_ms, 1)
    message = (f"Rate limit exceeded: the {scope.label}'s {DIMENSION_TEXT[dimension]} limit "
               f"({scope.limit(dimension)}) is reached; retry in {math.ceil(retry_ms / 1000)} s.")
    if dimension == "tokens" and outcome.state:
        message += " This request reserves its prompt plus max_tokens until it ends."
    LIMITED.labels(scope.kind, dimension).inc()
    return GatewayError(429, RATE_LIMIT, message, code="rate_limit_exceeded", headers=[
        (b"retry-after", str(math.ceil(retry_ms / 1000)).encode()), (b"retry-after-ms", str(retry_ms).encode())])


class Admission:
    """An admitted request's claim on the counters; `finish()` settles it (once)."""

    __slots__ = ("limiter", "request_id", "held", "settle_keys", "used", "done")

    def __init__(self, limiter, request_id: str, scopes: list[Scope]):
        self.limiter = limiter
        self.request_id = request_id
        self.held = [s for s in scopes if s.tpm is not None or s.concurrency is not None]
        self.settle_keys = [k for s in self.held for k in (f"{s.base}:tk", f"{s.base}:conc")]
        self.used = 0  # tokens the request really used; set when its usage event is made (usage_record)
        self.done = False

    def finish(self) -> None:
        if self.done:
            return
        self.done = True
        if self.settle_keys:
            self.limiter.settle(self)


class Limiter:
    """Per process (per Runtime): the registered scripts and the slots this process holds."""

    def __init__(self, redis):
        self.redis = redis
        self._admit = redis.register_script(ADMIT)  # one request, for peeking
        self._batch = redis.register_script(BATCH)  # a tick's admissions and settles: the request path
        self._beat = redis.register_script(BEAT)
        self.in_flight: dict[str, Admission] = {}
        self._ops: list[tuple] = []  # what the next BATCH carries
        self._flushing: asyncio.Task | None = None  # the batch still taking this tick's operations
        self._sending: set[asyncio.Task] = set()  # every batch not answered yet (shutdown waits for them)
        self._down_until = 0.0
        self._warned_at = 0.0

    def _failed(self, exc: BaseException, requests: int = 1):
        REDIS_ERRORS.inc(requests)
        now = time.monotonic()
        if isinstance(exc, (RedisConnectionError, OSError)):  # down: don't make every request try it for 1 s
            self._down_until = now + 1.0
        if now - self._warned_at >= 60:
            self._warned_at = now
            log.warning("rate limits: Redis did not answer (%s: %s); LIMITS_FAIL_MODE=%s", type(exc).__name__,
                        exc, settings.LIMITS_FAIL_MODE)

    def _unavailable(self) -> Admission | None:
        if settings.LIMITS_FAIL_MODE == "closed":
            raise GatewayError(503, RATE_LIMIT, "Rate limits cannot be checked right now (their store does not "
                               "answer); try again shortly.", code="rate_limits_unavailable",
                               headers=[(b"retry-after", b"1")])
        return None

    async def admit(self, req, principal, tokens: int, user: str = "",
                    labels: dict[str, str] | None = None) -> Admission | None:
        scopes = scopes_of(principal, user, labels)
        if not scopes:
            return None
        if time.monotonic() < self._down_until:
            return self._unavailable()
        answer = asyncio.get_running_loop().create_future()
        self._enqueue(("A", req.request_id, scopes, max(0, int(tokens)), answer))
        try:
            raw = await answer  # resolved by _flush within LIMITS_REDIS_TIMEOUT
        except asyncio.CancelledError:  # shutdown: give back what Redis may have granted meanwhile
            answer.add_done_callback(lambda done: self._release_orphan(done, req.request_id, scopes))
            raise
        except Exception:  # down, timeout, script error (counted and logged by _flush): the fail mode decides
            return self._unavailable()
        outcome = read_outcome(scopes, raw)
        req.extra_headers = rate_headers(outcome)
        if not outcome.allowed:
            raise refusal(outcome)
        admission = Admission(self, req.request_id, scopes)
        if any(s.concurrency is not None for s in scopes):
            self.in_flight[req.request_id] = admission
        return admission

    async def admit_scopes(self, request_id: str, scopes: list[Scope], tokens: int) -> Outcome | None:
        """One admission of these scopes in the tick's BATCH (the provider quotas: gateway/quotas.py); None when
        Redis does not answer and LIMITS_FAIL_MODE is open. An admitted outcome's slots are in `in_flight`'s
        care only once the caller makes its Admission."""
        if time.monotonic() < self._down_until:
            return self._unavailable()  # type: ignore[return-value]  # None, or the 503
        answer = asyncio.get_running_loop().create_future()
        self._enqueue(("A", request_id, scopes, max(0, int(tokens)), answer))
        try:
            raw = await answer
        except asyncio.CancelledError:
            answer.add_done_callback(lambda done: self._release_orphan(done, request_id, scopes))
            raise
        except Exception:
            return self._unavailable()  # type: ignore[return-value]
        return read_outcome(scopes, raw)

    def settle(self, admission: Admission):
        """Reconcile the tokens and free the slot, in the next BATCH; nothing waits for it. If Redis does not
        take it, the slot expires after LIMITS_SLOT_TTL and the reservation with its minute."""
        self.in_flight.pop(admission.request_id, None)
        self._enqueue(("S", admission.request_id, admission.held, admission.used, None))

    def _release_orphan(self, answer: asyncio.Future, request_id: str, scopes: list[Scope]):
        if not answer.cancelled() and answer.exception() is None and int(answer.result()[0]) == 1:
            self.settle(Admission(self, request_id, scopes))

    def _enqueue(self, op: tuple):
        self._ops.append(op)
        if self._flushing is None:
            self._flushing = task = asyncio.ensure_future(self._flush())
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _flush(self):
        """Send the admissions and settles of this event-loop tick in ONE EVALSHA (each decided on its own,
        in order, inside it): under load, the per-request cost of the Redis client shrinks to packing a few
        arguments, which is what keeps limits nearly free on the hot path (see bench/)."""
        await asyncio.sleep(0)  # let the rest of this tick's requests join
        ops, self._ops, self._flushing = self._ops, [], None
        index: dict[str, int] = {}
        keys: list[str] = []
        args: list = []
        answers = []

        def first_key(scope: Scope) -> int:
            if scope.base not in index:
                index[scope.base] = len(keys) + 1
                keys.extend(scope.keys())
            return index[scope.base]

        for kind, request_id, scopes, number, answer in ops:
            if kind == "S":
                args += ["S", request_id, number, len(scopes)]
                for scope in scopes:
                    args += [first_key(scope), -1 if scope.tpm is None else scope.tpm]
            else:
                args += ["A", request_id, len(scopes)]
                for scope in scopes:
                    args += [first_key(scope), *scope.args(number)]
                answers.append(answer)
        try:
            async with asyncio.timeout(settings.LIMITS_REDIS_TIMEOUT):
                results = await self._batch(keys=keys, args=[WINDOW_MS, int(settings.LIMITS_SLOT_TTL * 1000),
                                                             " ".join(map(str, args))])
        except BaseException as exc:
            self._failed(exc, max(1, len(answers)))
            for answer in answers:
                if not answer.done():
                    answer.set_exception(exc if isinstance(exc, Exception) else ConnectionError("cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        for answer, result in zip(answers, results):
            if not answer.done():
                answer.set_result(result)

    async def heartbeat_forever(self):
        """Push forward the expiry of the slots this process holds (long streams outlive LIMITS_SLOT_TTL)."""
        while True:
            await asyncio.sleep(max(settings.LIMITS_SLOT_TTL / 4, 0.05))  # a late beat or two is tolerated
            live = list(self.in_flight.values())
            if not live:
                continue
            keys, ids = [], []
            for admission in live:
                for key in admission.settle_keys[1::2]:  # the conc keys
                    keys.append(key)
                    ids.append(admission.request_id)
            try:
                async with asyncio.timeout(2.0):
                    await self._beat(keys=keys, args=[int(settings.LIMITS_SLOT_TTL * 1000), *ids])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed(exc)

    async def drain(self, timeout: float = 2.0):
        """Server shutdown: let the calls just cancelled reach their settle (uvicorn cancels them and sends the
        lifespan shutdown at once; on a loaded machine their exits run after this starts), then send every
        pending settle before Redis goes."""
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        while self._sending and time.monotonic() < deadline:  # a batch already on its way to Redis counts too
            await asyncio.wait(list(self._sending), timeout=max(0.0, deadline - time.monotonic()))

    async def peek(self, scopes: list[Scope]) -> list[dict | None]:
        """Each scope's state now, consuming nothing; [] entries are None when Redis does not answer."""
        limited = [s for s in scopes if s is not None and s.limited]
        if not limited:
            return [None] * len(scopes)
        keys, args = admit_args("peek", limited, 0, int(settings.LIMITS_SLOT_TTL * 1000), admit=False)
        try:
            async with asyncio.timeout(max(settings.LIMITS_REDIS_TIMEOUT, 1.0)):
                raw = await self._admit(keys=keys, args=args)
        except Exception as exc:
            self._failed(exc)
            return [None] * len(scopes)
        states = dict(zip((s.base for s in limited), read_outcome(limited, raw).state))
        return [states.get(s.base) if s is not None else None for s in scopes]


def allowed_chain(principal, model: str, provider_hint, chain: list) -> list:
    """The candidates the key and its tenant may call; 403 model_not_allowed when none is left."""
    lists = (principal.allowed_models, principal.tenant_allowed_models)
    if not (lists[0] or lists[1]):
        return chain
    allowed = permitted(lists, model, provider_hint is not None, chain)
    if not allowed:
        NOT_ALLOWED.inc()
        raise GatewayError(403, PERMISSION, f"This API key may not use the model '{model}'"
                           + (f" (routed to '{chain[0][0].name}/{chain[0][1]}')" if chain else "")
                           + "; its allow-list or its tenant's does not include it.", param="model",
                           code="model_not_allowed")
    return allowed


def visible_models(principal, registry, listing: list) -> list:
    """GET /v1/models: only the (target, model) pairs the key and its tenant may call."""
    lists = [allow for allow in (principal.allowed_models, principal.tenant_allowed_models) if allow]
    if not lists:
        return listing
    return [(target, model) for target, model in listing
            if all(allow.allows_target(target.name, model)
                   or (allow.allows_name(model) and registry.find(model) is target) for allow in lists)]


async def rate_limit_report(runtime, principal, tenant=None) -> dict:
    """`rate_limits` of GET /v1/usage: limit, remaining and reset of each limit of the calling key and its
    tenant (or, for the master key, of `tenant`), read without consuming anything."""
    prefix = settings.LIMITS_PREFIX
    if tenant is not None:
        scopes = [None, tenant_scope(prefix, tenant.id, tenant.rpm_limit, tenant.tpm_limit, tenant.concurrency_limit)]
    else:
        scopes = [key_scope(prefix, principal.tenant_id, principal.key_id, principal.rpm_limit, principal.tpm_limit,
                            principal.concurrency_limit),
                  tenant_scope(prefix, principal.tenant_id, principal.tenant_rpm_limit, principal.tenant_tpm_limit,
                               principal.tenant_concurrency_limit)]
    states = await runtime.limits.peek(scopes)
    return {"key": report(scopes[0], states[0]), "tenant": report(scopes[1], states[1])}
