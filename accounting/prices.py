"""What a request cost: match a `ModelPrice`, then price the event's tokens. Runs in the usage worker
(and for not-yet-drained events in `/v1/usage`), never on the request path.

Tokens, with the adapters' OpenAI convention (`prompt_tokens` includes `cached_tokens`):

    input      = (prompt_tokens - cached_tokens) × input price
               + cached_tokens × cached-input price (the input price when none is set)
    output     = visible completion tokens × output price
               + reasoning tokens × reasoning price (the output price when none is set)

Reasoning tokens, per provider — the rule that keeps them from being missed or billed twice:

- Inside `completion_tokens` (OpenAI, and every other provider unless listed below): the reasoning
  tokens are a part of `completion_tokens`, so visible = completion − reasoning and the total output
  billed is exactly `completion_tokens` (at two prices if a reasoning price is set).
- Outside `completion_tokens` (`REASONING_OUTSIDE_COMPLETION`: xAI): `completion_tokens` counts only
  the visible answer and `total_tokens = prompt + completion + reasoning` (the recorded grok-3-mini
  answer: 10 + 35 + 375 = 420), so both are billed: completion + reasoning.
- Whatever the provider, the numbers decide when they can: reasoning > completion cannot be a part of
  it (outside), total = prompt + completion + reasoning ≠ prompt + completion means outside, and
  total = prompt + completion means inside. The provider list only settles events whose total says
  nothing (no total reported).

The cost is rounded half-even to 1e-10 USD per event and stored as a Decimal; `None` (not 0) when no
price matches, so unknown prices stay visible (admin: "priced" filter).
"""

import fnmatch
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from .usage_event import StreamEvent

REASONING_OUTSIDE_COMPLETION = frozenset({"xai"})
COST_QUANTUM = Decimal("1e-10")
MILLION = Decimal(1_000_000)


def reasoning_outside_completion(provider_type: str, prompt: int, completion: int, reasoning: int,
                                 total: int) -> bool:
    if reasoning <= 0:
        return False
    if reasoning > completion:
        return True
    if total and total == prompt + completion + reasoning:
        return True
    if total and total == prompt + completion:
        return False
    return provider_type in REASONING_OUTSIDE_COMPLETION


@dataclass(frozen=True)
class Price:
    provider: str
    pattern: str
    valid_from: datetime
    input: Decimal
    cached_input: Decimal | None
    output: Decimal
    reasoning: Decimal | None

    @property
    def specificity(self) -> tuple[int, int]:
        exact = not any(c in self.pattern for c in "*?[")
        return (1 if exact else 0, len(self.pattern.replace("*", "").replace("?", "")))

    def matches(self, model: str) -> bool:
        return self.pattern == model or fnmatch.fnmatchcase(model, self.pattern)


class PriceBook:
    """All prices in memory (the table is small); `lookup` memoises per (provider, model)."""

    def __init__(self, prices: list[Price]):
        self._by_provider: dict[str, list[Price]] = {}
        for price in prices:
            self._by_provider.setdefault(price.provider, []).append(price)
        for rows in self._by_provider.values():
            rows.sort(key=lambda p: (p.specificity, p.valid_from), reverse=True)
        self._memo: dict[tuple, list[Price]] = {}

    @classmethod
    def load(cls) -> "PriceBook":
        from .models import ModelPrice

        return cls([
            Price(row.provider, row.model_pattern, row.valid_from, row.input_per_million,
                  row.cached_input_per_million, row.output_per_million, row.reasoning_per_million)
            for row in ModelPrice.objects.all()
        ])

    def lookup(self, provider_type: str, provider_name: str, model: str, when: datetime) -> Price | None:
        """A price set for the config's own name wins over one for its provider type."""
        key = (provider_type, provider_name, model)
        candidates = self._memo.get(key)
        if candidates is None:
            candidates = []
            for provider in (provider_name, provider_type):
                rows = [p for p in self._by_provider.get(provider, ()) if p.matches(model)]
                if rows:
                    candidates = rows  # already ordered: most specific, then latest valid_from
                    break
            self._memo[key] = candidates
        for price in candidates:  # most specific first, then the latest that had started
            if price.valid_from <= when:
                return price
        return None

    def cost(self, event: StreamEvent, when: datetime) -> Decimal | None:
        price = self.lookup(event.provider_type, event.provider, event.model, when)
        if price is None:
            return None
        return event_cost(price, event)


def event_cost(price: Price, event: StreamEvent) -> Decimal:
    prompt, completion, total = event.prompt_tokens, event.completion_tokens, event.total_tokens
    cached = min(event.cached_tokens, prompt)
    reasoning = event.reasoning_tokens
    if reasoning_outside_completion(event.provider_type, prompt, completion, reasoning, total):
        visible = completion
    else:
        reasoning = min(reasoning, completion)
        visible = completion - reasoning
    cached_price = price.cached_input if price.cached_input is not None else price.input
    reasoning_price = price.reasoning if price.reasoning is not None else price.output
    amount = ((prompt - cached) * price.input + cached * cached_price + visible * price.output
              + reasoning * reasoning_price) / MILLION
    return amount.quantize(COST_QUANTUM, rounding=ROUND_HALF_EVEN)


def to_e10(cost: Decimal | None) -> int:
    """A quantized cost as an integer number of 1e-10 USD (the roll-ups' unit)."""
    return int(cost.scaleb(10)) if cost is not None else 0
