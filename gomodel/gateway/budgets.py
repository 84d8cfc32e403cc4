"""Budgets on the request path: one MGET before the upstream call, the cost of the finished request
into the counters (with its usage event), and the running cost of a stream that may cut it.

The counters and why they never double-count are explained in accounting/budgets.py. Every
endpoint calls `check_budget(runtime, req)` once after authenticating (before any upstream call);
`recorded()` calls `charge` when it emits the event.
"""

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from decimal import Decimal

from asgiref.sync import sync_to_async
from redis.exceptions import ConnectionError as RedisConnectionError

from accounting.budgets import counters as budgets
from accounting.prices.book import PriceBook, Rates, to_e10

from .errors import RATE_LIMIT, GatewayError

log = logging.getLogger(__name__)
CHARS_PER_TOKEN = 4  # the running estimate inside a stream; the event gets the exact estimate
_warned = {"at": 0.0}


@dataclass
class BudgetState:
    """What the check found: the tightest remaining budget, in 1e-10 USD, and whose it is."""
    budgets: tuple
    remaining_e10: int
    tightest: budgets.Budget


def _load_prices() -> PriceBook:
    import genai_prices  # noqa: F401  (~0.15 s and ~28 MB: here, in this thread, not on the loop at first price)
    from django.db import close_old_connections

    close_old_connections()
    return PriceBook.load()


async def prices(runtime) -> PriceBook:
    """The admin's prices (over genai-prices), loaded once per process and dropped on a change."""
    if runtime.prices is None:
        runtime.prices = await sync_to_async(_load_prices, thread_sensitive=True)()
    return runtime.prices


def over_budget(budget, now, prompt: bool = False) -> GatewayError:
    end = budgets.period_end(budget.period, now)
    who = "tenant" if budget.scope == "tenant" else "API key"
    message = f"The {who}'s {budget.period} budget of ${budgets.usd(budget.limit_e10)} is spent."
    if prompt:
        message = (f"This request's prompt alone would cost more than what is left of the {who}'s "
                   f"{budget.period} budget of ${budgets.usd(budget.limit_e10)}.")
    headers = []
    if end is not None:
        headers.append((b"retry-after", str(max(1, math.ceil((end - now).total_seconds()))).encode()))
        message += f" It resets at {end.isoformat()}."
    return GatewayError(429, RATE_LIMIT, message, code="budget_exceeded", headers=headers)


async def check_budget(runtime, req) -> BudgetState | None:
    """Refuse a request whose key or tenant has spent its budget (429 budget_exceeded, Retry-After:
    seconds to the period's end). One Redis round trip; Redis down → allowed (and logged)."""
    principal = req.auth
    owned = getattr(principal, "budgets", ())
    if not owned:
        return None
    await prices(runtime)  # cold path only: the next requests find them in memory
    now = budgets.clock()
    names = [b.counter(now) for b in owned]
    try:
        spent_now = await spent(runtime.redis, names)
    except Exception as exc:
        _warn(f"budget check skipped, Redis unavailable ({exc})")
        return None
    remaining, tightest = None, None
    for budget, spent_e10 in zip(owned, spent_now):
        if spent_e10 >= budget.limit_e10:
            raise over_budget(budget, now)
        left = budget.limit_e10 - spent_e10
        if remaining is None or left < remaining:
            remaining, tightest = left, budget
    state = BudgetState(owned, remaining, tightest)
    req.budget = state
    return state


def charge(runtime, record, event) -> None:
    """Price a budgeted request's event (a StreamEvent) in the gateway and name the counters it goes
    into; the usage writer adds it to them in the same MULTI as the XADD."""
    state = record.budget
    if state is None or runtime.prices is None:
        return
    when = event.created_at  # the day the drain files the event under
    priced = runtime.prices.price(event, when)
    event.cost_source = priced.source
    if priced.cost is None:
        log.warning("no price known for %s/%s: request %s is allowed but not counted against a budget",
                    event.provider, event.model, event.request_id)
        return
    event.cost_e10 = to_e10(priced.cost)
    event.cost = budgets.usd(event.cost_e10)
    event.budget_keys = [b.counter(when) for b in state.budgets]


def _prompt_chars(messages) -> int:
    total = 0
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    total += len(part["text"])
    return total


class StreamGuard:
    """The running cost of a stream from what was relayed: prompt (chars/4 × input price) plus
    completion so far (chars/4 × output price), O(new text) per upstream read. It shares that
    estimate with the other requests of the same key and tenant (`spent`, one EVALSHA) at most
    every SYNC_SECONDS, or sooner when it has used half of the headroom it last saw, so concurrent
    streams are cut when together they cross the budget."""

    SYNC_SECONDS = 0.1
    __slots__ = ("state", "rates", "relayed", "seen", "chars", "prompt", "names", "request_id", "redis",
                 "headroom", "synced_own", "synced_at", "limit")

    def __init__(self, state: BudgetState, rates: Rates, record, redis):
        self.state = state
        self.rates = rates
        self.relayed = record.relayed
        self.seen = len(self.relayed)
        self.chars = 0
        self.prompt = rates.input * (_prompt_chars(record.messages) // CHARS_PER_TOKEN)
        self.limit = Decimal(state.remaining_e10).scaleb(-10) - self.prompt  # USD left for the completion
        self.names = [b.counter(budgets.clock()) for b in state.budgets]
        self.request_id = record.request_id
        self.redis = redis
        self.synced_own = to_e10(self.prompt.quantize(Decimal("1e-10")))
        self.headroom = state.remaining_e10 - self.synced_own  # before any sync: what the check saw
        self.synced_at = 0.0  # the first read registers the stream at once

    @classmethod
    def maybe(cls, record, runtime) -> "StreamGuard | None":
        state = record.budget
        if state is None or runtime.prices is None:
            return None
        target = record.target
        rates = runtime.prices.rates(target.provider_type, target.name, record.model)
        if rates is None or not rates.output:
            return None  # no known price: allowed and logged when the event is priced
        return cls(state, rates, record, runtime.redis)

    def check_prompt(self, state: BudgetState) -> None:
        """Refuse, before any upstream call, a request whose prompt alone costs more than is left."""
        if self.limit <= 0:
            raise over_budget(state.tightest, budgets.clock(), prompt=True)

    def own_e10(self) -> int:
        relayed = self.relayed
        while self.seen < len(relayed):
            self.chars += len(relayed[self.seen])
            self.seen += 1
        cost = self.prompt + self.rates.output * math.ceil(self.chars / CHARS_PER_TOKEN)
        return to_e10(cost.quantize(Decimal("1e-10")))

    async def exceeded(self) -> bool:
        own = self.own_e10()
        grown = own - self.synced_own
        if grown > self.headroom:
            return True
        if grown * 2 < self.headroom and time.monotonic() - self.synced_at < self.SYNC_SECONDS:
            return False
        try:
            totals = await spent(self.redis, self.names, self.request_id, own)
        except Exception as exc:  # Redis gone: decide on what this stream alone has used
            _warn(f"budget sync of a stream failed ({exc})")
            self.synced_at = time.monotonic()
            return False
        self.synced_own, self.synced_at = own, time.monotonic()
        self.headroom = min(b.limit_e10 - total for b, total in zip(self.state.budgets, totals))
        return self.headroom < 0


class BudgetCut(Exception):
    """The running cost of a stream crossed the remaining budget (StreamGuard.exceeded): the relay stops."""


def cut_error() -> GatewayError:
    return GatewayError(429, RATE_LIMIT, "The budget ran out during this response; the stream was stopped.",
                        code="budget_exceeded")


def bill_cut(record) -> None:
    """A stream its budget stopped is billed for what the client got: the relayed text, estimated (the
    prompt too when nothing was relayed yet), never the upstream's partial usage."""
    cut = cut_error()
    record.usage = None
    if not record.relayed:
        record.relayed.append("")
    record.status, record.error_type = cut.status, cut.type


# Spent per budget = base + pending + the running estimates of its streams in flight. A stream
# registers its estimate under its request id (HSET) with an expiry (ZADD), so a gateway that dies
# mid-stream leaks nothing for longer than INFLIGHT_TTL; the usage writer removes it in the MULTI
# that moves the finished request's cost into `pending`.
INFLIGHT_TTL = 60
_SPENT = """
local now, ttl, rid, amount = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local out = {}
for i = 1, #KEYS, 4 do
  local hash, zset = KEYS[i + 2], KEYS[i + 3]
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', zset, '-inf', now)) do redis.call('HDEL', hash, old) end
  redis.call('ZREMRANGEBYSCORE', zset, '-inf', now)
  if rid ~= '' then
    redis.call('HSET', hash, rid, amount)
    redis.call('ZADD', zset, now + tonumber(ttl), rid)
    redis.call('EXPIRE', hash, ttl)
    redis.call('EXPIRE', zset, ttl)
  end
  local inflight = 0
  for _, v in ipairs(redis.call('HVALS', hash)) do inflight = inflight + tonumber(v) end
  out[#out + 1] = redis.call('GET', KEYS[i]) or '0'
  out[#out + 1] = redis.call('GET', KEYS[i + 1]) or '0'
  out[#out + 1] = string.format('%d', inflight)
end
return out
"""
_script = {}


async def spent(redis, names: list[str], request_id: str = "", own_e10: int = 0) -> list[int]:
    """One EVALSHA: each counter's spend (in flight included), registering a stream's own estimate
    when `request_id` is given. Once more on a pooled connection that Redis closed (a restart)."""
    script = _script.get("spent")
    if script is None:
        script = _script["spent"] = redis.register_script(_SPENT)
    keys = [n + s for n in names for s in (":base", ":pending", ":inflight", ":inflight-exp")]
    for attempt in (1, 2):
        try:
            async with asyncio.timeout(2.0):
                values = await script(keys, [time.time(), INFLIGHT_TTL, request_id, own_e10], client=redis)
            break
        except RedisConnectionError:
            if attempt == 2:
                raise
    return [int(values[i]) + int(values[i + 1]) + int(values[i + 2]) for i in range(0, len(values), 3)]


def _warn(message: str) -> None:
    now = time.monotonic()
    if now - _warned["at"] > 60:
        _warned["at"] = now
        log.warning(message)


async def budget_status(runtime, owned) -> dict:
    """`budget` of GET /v1/usage: for the tenant and the key, the limit, what was spent this period,
    what is left and when the period ends (null where no budget is set)."""
    now = budgets.clock()
    answer = {"tenant": None, "key": None}
    if not owned:
        return answer
    names = [b.counter(now) for b in owned]
    for budget, spent_e10 in zip(owned, await spent(runtime.redis, names)):
        answer[budget.scope] = budgets.status(budget, spent_e10, now)
    return answer
