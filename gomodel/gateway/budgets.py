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

from accounting import budgets
from accounting.prices import PriceBook, Rates, to_e10

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
        values = await _mget(runtime.redis, [n + s for n in names for s in (":base", ":pending")])
    except Exception as exc:
        _warn(f"budget check skipped, Redis unavailable ({exc})")
        return None
    remaining, tightest = None, None
    for i, budget in enumerate(owned):
        spent = int(values[2 * i] or 0) + int(values[2 * i + 1] or 0)
        if spent >= budget.limit_e10:
            raise over_budget(budget, now)
        left = budget.limit_e10 - spent
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
    completion so far (chars/4 × output price). `exceeded()` is O(new text) per chunk."""

    __slots__ = ("limit", "rates", "relayed", "seen", "chars")

    def __init__(self, state: BudgetState, rates: Rates, record):
        self.rates = rates
        self.relayed = record.relayed
        self.seen = len(self.relayed)
        self.chars = 0
        prompt_cost = rates.input * (_prompt_chars(record.messages) // CHARS_PER_TOKEN)
        self.limit = Decimal(state.remaining_e10).scaleb(-10) - prompt_cost  # USD left for the completion

    @classmethod
    def maybe(cls, record, runtime) -> "StreamGuard | None":
        state = record.budget
        if state is None or runtime.prices is None:
            return None
        target = record.target
        rates = runtime.prices.rates(target.provider_type, target.name, record.model)
        if rates is None or not rates.output:
            return None  # no known price: allowed and logged when the event is priced
        return cls(state, rates, record)

    def check_prompt(self, state: BudgetState) -> None:
        """Refuse, before any upstream call, a request whose prompt alone costs more than is left."""
        if self.limit <= 0:
            raise over_budget(state.tightest, budgets.clock(), prompt=True)

    def exceeded(self) -> bool:
        relayed = self.relayed
        while self.seen < len(relayed):
            self.chars += len(relayed[self.seen])
            self.seen += 1
        return self.rates.output * math.ceil(self.chars / CHARS_PER_TOKEN) > self.limit


def cut_error() -> GatewayError:
    return GatewayError(429, RATE_LIMIT, "The budget ran out during this response; the stream was stopped.",
                        code="budget_exceeded")


async def _mget(redis, names: list[str]) -> list:
    """One MGET; once more on a pooled connection that Redis closed (a restart), then give up."""
    for attempt in (1, 2):
        try:
            async with asyncio.timeout(2.0):
                return await redis.mget(names)
        except RedisConnectionError:
            if attempt == 2:
                raise


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
    values = await _mget(runtime.redis, [n + s for n in names for s in (":base", ":pending")])
    for i, budget in enumerate(owned):
        answer[budget.scope] = budgets.status(budget, int(values[2 * i] or 0) + int(values[2 * i + 1] or 0), now)
    return answer
