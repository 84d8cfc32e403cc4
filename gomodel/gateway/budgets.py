"""Budgets on the request path: a reservation at admission (one EVALSHA: refuse, or register the call's
priced estimate as in flight), the cost of the finished call into the counters (with its usage event,
which also clears the reservation), and the running cost of a stream that may cut it.

The counters and why they never double-count are explained in accounting/budgets.py. The pipeline's
`Call` (gomodel/gateway/pipeline/call.py) is the only caller: `reserve` when it admits a call, `charge`
when it emits the call's event, `release` when no event will.
"""

import asyncio
import logging
import math
import time
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from redis.exceptions import ConnectionError as RedisConnectionError

from accounting.budgets import counters as budgets
from accounting.prices.book import PriceBook, Rates, to_e10

from .errors import RATE_LIMIT, GatewayError

log = logging.getLogger(__name__)
CHARS_PER_TOKEN = 4  # the running estimate inside a stream; the event gets the exact estimate
_warned = {"at": 0.0}


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
    who = {"tenant": "tenant", "user": "end user"}.get(budget.scope, "API key")
    if budget.scope == "label":
        who = f"label {budgets.label_of(budget)}"
    message = f"The {who}'s {budget.period} budget of ${budgets.usd(budget.limit_e10)} is spent."
    if prompt:
        message = (f"This request's prompt alone would cost more than what is left of the {who}'s "
                   f"{budget.period} budget of ${budgets.usd(budget.limit_e10)}.")
    headers = []
    if end is not None:
        headers.append((b"retry-after", str(max(1, math.ceil((end - now).total_seconds()))).encode()))
        message += f" It resets at {end.isoformat()}."
    return GatewayError(429, RATE_LIMIT, message, code="budget_exceeded", headers=headers)


class Reservation:
    """A call's claim on its budgets, made at admission: the tightest room left (1e-10 USD), the counters
    it is registered under, and what it reserved there (its priced estimate) until it is settled."""

    __slots__ = ("budgets", "names", "remaining_e10", "tightest", "reserved_e10", "request_id", "settled")

    def __init__(self, owned, names, remaining_e10, tightest, reserved_e10, request_id):
        self.budgets = owned
        self.names = names
        self.remaining_e10 = remaining_e10  # before this call's own reservation
        self.tightest = tightest
        self.reserved_e10 = reserved_e10
        self.request_id = request_id
        self.settled = False


async def reserve(runtime, principal, request_id: str, target, model: str, prompt_tokens: int,
                  output_tokens: int, stream: bool, extra: tuple = (),
                  units: tuple[int, int] = (0, 0)) -> Reservation | None:
    """Admit a call against its key's and tenant's budgets in one Redis round trip (the `_RESERVE` script):
    429 budget_exceeded when what is spent (in-flight reservations of other calls included) has reached a
    limit, or when the prompt alone would cost more than is left; otherwise register this call's priced
    estimate (prompt + `output_tokens` at today's rates) as in flight, so parallel calls see it (a stream's
    guard later replaces it by the running cost of what it relayed, and cuts the stream past the budget). The usage
    writer replaces it by the real cost in the MULTI of the event (or `release` drops it). So parallel
    calls overspend by at most one call's own cost. Redis down → allowed (and logged). `units` (images, characters)
    are a media call's known units: their price is certain, so it counts with the prompt (a budget refuses the call
    when they alone cost more than is left); audio seconds are not known before the answer."""
    owned = getattr(principal, "budgets", ()) + tuple(extra)  # extra: the call's end user's and labels' budgets
    if not owned:
        return None
    book = await prices(runtime)  # cold path only: the next requests find them in memory
    rates = book.rates(target.provider_type, target.name, model)
    now = budgets.clock()
    names = [b.counter(now) for b in owned]
    prompt_e10 = reserved_e10 = 0
    if rates is not None:
        prompt_e10 = to_e10((rates.input * prompt_tokens).quantize(Decimal("1e-10")))
        reserved_e10 = prompt_e10 + to_e10((rates.output * output_tokens).quantize(Decimal("1e-10")))
    if any(units):
        units_cost = book.units_cost(target.provider_type, target.name, model, *units)
        if units_cost is not None:
            prompt_e10 += to_e10(units_cost)
            reserved_e10 += to_e10(units_cost)
    # A non-stream call keeps its reservation until it ends (UPSTREAM_DEADLINE at most); a stream's guard
    # replaces it by its running estimate and keeps that alive.
    ttl = INFLIGHT_TTL if stream else int(settings.UPSTREAM_DEADLINE) + INFLIGHT_TTL
    try:
        allowed, index, reason, totals = await _reserve(runtime.redis, names, [b.limit_e10 for b in owned],
                                                        request_id, reserved_e10, prompt_e10, ttl)
    except Exception as exc:
        _warn(f"budget check skipped, Redis unavailable ({exc})")
        return None
    if not allowed:
        raise over_budget(owned[index], now, prompt=reason == "prompt")
    remaining, tightest = None, None
    for budget, total in zip(owned, totals):
        left = budget.limit_e10 - total
        if remaining is None or left < remaining:
            remaining, tightest = left, budget
    return Reservation(owned, names, remaining, tightest, reserved_e10 if reserved_e10 else 0, request_id)


_tasks: set = set()


def release(runtime, reservation: Reservation) -> None:
    """Drop a reservation no usage event will settle (a call refused after it was admitted here, or one
    that never reached an upstream). Queued, never awaited by the answer; if Redis does not take it, it
    expires with its TTL."""
    if reservation.settled or not reservation.reserved_e10:
        return
    reservation.settled = True

    async def drop():
        try:
            async with asyncio.timeout(2.0):
                async with runtime.redis.pipeline(transaction=False) as pipe:
                    for name in reservation.names:
                        pipe.hdel(name + ":inflight", reservation.request_id)
                        pipe.zrem(name + ":inflight-exp", reservation.request_id)
                    await pipe.execute()
        except Exception as exc:
            _warn(f"a budget reservation could not be released; it expires by itself ({exc})")

    task = asyncio.ensure_future(drop())
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def charge(runtime, record, event) -> None:
    """Price a budgeted request's event (a StreamEvent) in the gateway and name the counters it goes
    into; the usage writer adds it to them in the same MULTI as the XADD."""
    state = record.budget
    if state is None or runtime.prices is None:
        return
    when = event.created_at  # the day the drain files the event under
    names = [b.counter(when) for b in state.budgets]
    priced = runtime.prices.price(event, when)
    event.cost_source = priced.source
    if priced.cost is None:
        log.warning("no price known for %s/%s: request %s is allowed but not counted against a budget",
                    event.provider, event.model, event.request_id)
        return
    event.cost_e10 = to_e10(priced.cost)
    event.cost = budgets.usd(event.cost_e10)
    # The usage writer adds the cost to these counters and clears the call's reservation from them (one MULTI).
    event.budget_keys = names
    state.settled = names == state.names


class StreamGuard:
    """The running cost of a stream from what was relayed: its prompt (as reserved) plus the completion so
    far (chars/4 × output price), O(new text) per upstream read. It shares that estimate with the other
    calls of the same key and tenant (`spent`, one EVALSHA; it replaces the call's admission reservation)
    at most every SYNC_SECONDS, or sooner when it has used half of the headroom it last saw, so concurrent
    calls are cut when together they cross the budget."""

    SYNC_SECONDS = 0.1
    __slots__ = ("state", "rates", "relayed", "seen", "chars", "prompt", "names", "request_id", "redis",
                 "headroom", "synced_own", "synced_at")

    def __init__(self, state: Reservation, rates: Rates, record, prompt_tokens: int, redis):
        self.state = state
        self.rates = rates
        self.relayed = record.relayed
        self.seen = len(self.relayed)
        self.chars = 0
        self.prompt = rates.input * prompt_tokens
        self.names = state.names
        self.request_id = state.request_id
        self.redis = redis
        self.synced_own = to_e10(self.prompt.quantize(Decimal("1e-10")))
        self.headroom = state.remaining_e10 - self.synced_own  # before any sync: what the admission saw
        self.synced_at = 0.0  # the first read registers the stream's own estimate at once

    @classmethod
    def maybe(cls, call, runtime) -> "StreamGuard | None":
        state = call.budget
        if state is None or runtime.prices is None:
            return None
        target = call.record.target
        rates = runtime.prices.rates(target.provider_type, target.name, call.record.model)
        if rates is None or not rates.output:
            return None  # no known price: allowed and logged when the event is priced
        return cls(state, rates, call.record, call.protocol.prompt_tokens(), runtime.redis)

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
_EXPIRE_OLD = """
local function expire_old(hash, zset, now)
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', zset, '-inf', now)) do redis.call('HDEL', hash, old) end
  redis.call('ZREMRANGEBYSCORE', zset, '-inf', now)
end
local function register(hash, zset, now, ttl, rid, amount)
  redis.call('HSET', hash, rid, amount)
  redis.call('ZADD', zset, now + ttl, rid)
  -- never shorten the life of the hash: a long non-stream reservation shares it with short stream entries
  if redis.call('TTL', hash) < ttl then redis.call('EXPIRE', hash, ttl) end
  if redis.call('TTL', zset) < ttl then redis.call('EXPIRE', zset, ttl) end
end
local function inflight(hash)
  local sum = 0
  for _, v in ipairs(redis.call('HVALS', hash)) do sum = sum + tonumber(v) end
  return sum
end
"""
_SPENT = _EXPIRE_OLD + """
local now, ttl, rid, amount = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4]
local out = {}
for i = 1, #KEYS, 4 do
  local hash, zset = KEYS[i + 2], KEYS[i + 3]
  expire_old(hash, zset, now)
  if rid ~= '' then register(hash, zset, now, ttl, rid, amount) end
  out[#out + 1] = redis.call('GET', KEYS[i]) or '0'
  out[#out + 1] = redis.call('GET', KEYS[i + 1]) or '0'
  out[#out + 1] = string.format('%d', inflight(hash))
end
return out
"""
# Admission: decide on every budget first, register the reservation only when all admit it (atomic, so two
# calls admitted at once each see the other's reservation). ARGV: now, ttl, rid, reserved, prompt, limits….
_RESERVE = _EXPIRE_OLD + """
local now, ttl, rid, amount, prompt = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]),
  tonumber(ARGV[5])
local totals = {}
for i = 1, #KEYS, 4 do
  local j = (i - 1) / 4 + 1
  local hash, zset = KEYS[i + 2], KEYS[i + 3]
  expire_old(hash, zset, now)
  local spent = tonumber(redis.call('GET', KEYS[i]) or '0') + tonumber(redis.call('GET', KEYS[i + 1]) or '0')
    + inflight(hash)
  local limit = tonumber(ARGV[5 + j])
  if spent >= limit then return {0, j, 'spent'} end
  if prompt > 0 and prompt >= limit - spent then return {0, j, 'prompt'} end
  totals[#totals + 1] = string.format('%d', spent)
end
if amount > 0 then
  for i = 1, #KEYS, 4 do register(KEYS[i + 2], KEYS[i + 3], now, ttl, rid, ARGV[4]) end
end
return {1, 0, '', unpack(totals)}
"""
_script: dict[str, Any] = {}  # name -> redis AsyncScript


async def _run(redis, name: str, source: str, keys: list, args: list):
    """One EVALSHA; once more on a pooled connection that Redis closed (a restart)."""
    script = _script.get(name)
    if script is None:
        script = _script[name] = redis.register_script(source)
    for attempt in (1, 2):
        try:
            async with asyncio.timeout(2.0):
                return await script(keys, args, client=redis)
        except RedisConnectionError:
            if attempt == 2:
                raise


def _keys(names: list[str]) -> list[str]:
    return [n + s for n in names for s in (":base", ":pending", ":inflight", ":inflight-exp")]


async def spent(redis, names: list[str], request_id: str = "", own_e10: int = 0) -> list[int]:
    """Each counter's spend (in flight included), registering a stream's own estimate when `request_id`
    is given."""
    values = await _run(redis, "spent", _SPENT, _keys(names), [time.time(), INFLIGHT_TTL, request_id, own_e10])
    return [int(values[i]) + int(values[i + 1]) + int(values[i + 2]) for i in range(0, len(values), 3)]


async def _reserve(redis, names, limits, request_id, reserved_e10, prompt_e10, ttl):
    """(allowed, index of the refusing budget, 'spent' | 'prompt', what each budget had spent before)."""
    values = await _run(redis, "reserve", _RESERVE, _keys(names),
                        [time.time(), ttl, request_id, reserved_e10, prompt_e10, *limits])
    allowed = int(values[0]) == 1
    reason = values[2].decode() if isinstance(values[2], bytes) else values[2]
    return allowed, int(values[1]) - 1, reason, [int(v) for v in values[3:]]


def _warn(message: str) -> None:
    now = time.monotonic()
    if now - _warned["at"] > 60:
        _warned["at"] = now
        log.warning(message)


async def budget_status(runtime, owned) -> dict:
    """`budget` of GET /v1/usage: for the tenant and the key, the limit, what was spent this period,
    what is left and when the period ends (null where no budget is set)."""
    now = budgets.clock()
    answer: dict[str, dict | None] = {"tenant": None, "key": None}
    if not owned:
        return answer
    names = [b.counter(now) for b in owned]
    for budget, spent_e10 in zip(owned, await spent(runtime.redis, names)):
        answer[budget.scope] = budgets.status(budget, spent_e10, now)
    return answer


async def row_budgets(runtime, rows: list[dict], group_by: str, user_budget, label_budgets) -> None:
    """`/v1/usage?group_by=label|user`: each row of a budgeted label value or end user gets its `budget` (as the
    report's own `budget` shows the tenant's and the key's); the others stay as they were. Redis down: null."""
    found = []
    for row in rows:
        budget = budgets.attribution_budget(group_by, row.get(group_by), user_budget, label_budgets)
        if budget is not None:
            row["budget"] = None
            found.append((row, budget))
    if not found:
        return
    now = budgets.clock()
    try:
        values = await spent(runtime.redis, [budget.counter(now) for _, budget in found])
    except Exception as exc:
        log.warning("/v1/usage could not read the label and end-user budget counters (%s)", exc)
        return
    for (row, budget), spent_e10 in zip(found, values):
        row["budget"] = budgets.status(budget, spent_e10, now)
