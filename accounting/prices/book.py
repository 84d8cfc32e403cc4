"""What a request cost, and where that figure came from (`cost_source`), in this order:

1. `upstream`: the upstream said what it charged (OpenRouter's `usage.cost`, xAI's `cost_in_usd_ticks`).
2. `admin`: a `ModelPrice` row an operator made (per million input / cached input / cache write /
   output / reasoning tokens, from `valid_from` on) matches the provider and model.
3. `price_db`: the `genai-prices` package's offline price database (history, long-context tiers,
   cache reads and writes) knows the model.
4. `unknown`: cost is null (never 0), so unknown prices stay visible; a budget lets such a request through.

A media call's units (images, audio seconds, speech characters) are billed beside its tokens by the same
source, per unit where it has a price; a call measured only in units that no source prices is `unknown`
(accounting/prices/units.py).

It runs in the gateway when the request's key or tenant has a budget (the spend counters need it at
once), otherwise in the usage worker (and for not-yet-drained events in `/v1/usage`).

Tokens, with the adapters' OpenAI convention (`prompt_tokens` includes cache reads and cache writes):

    input      = (prompt_tokens - cached_tokens - cache_write_tokens) × input price
               + cached_tokens × cached-input price (the input price when none is set)
               + cache_write_tokens × cache-write price (the input price when none is set)
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

The cost is rounded half-even to 1e-10 USD per event and stored as a Decimal.
"""

import fnmatch
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from ..usage.events import StreamEvent
from .units import (
    UnitPrices,
    admin_units_cost,
    has_units,
    price_db_prices_units,
    price_db_units,
    tokens_reported,
    unmeasured,
)

log = logging.getLogger(__name__)

REASONING_OUTSIDE_COMPLETION = frozenset({"xai"})
COST_QUANTUM = Decimal("1e-10")
MILLION = Decimal(1_000_000)
UPSTREAM, ADMIN, PRICE_DB, UNKNOWN = "upstream", "admin", "price_db", "unknown"
COST_SOURCES = (UPSTREAM, ADMIN, PRICE_DB, UNKNOWN)
# Our provider types -> genai-prices provider ids (providers it does not know get no default price).
PRICE_DB_PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "gemini": "google", "groq": "groq",
                      "openrouter": "openrouter", "deepseek": "deepseek", "zai": "zai", "xai": "x-ai",
                      "minimax": "minimax"}


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
    cache_write: Decimal | None = None
    units: UnitPrices = UnitPrices()  # per image / audio minute / 1M characters (media calls)

    @property
    def specificity(self) -> tuple[int, int]:
        exact = not any(c in self.pattern for c in "*?[")
        return (1 if exact else 0, len(self.pattern.replace("*", "").replace("?", "")))

    def matches(self, model: str) -> bool:
        return self.pattern == model or fnmatch.fnmatchcase(model, self.pattern)


@dataclass(frozen=True)
class Priced:
    cost: Decimal | None
    source: str


@dataclass(frozen=True)
class Rates:
    """USD per token, for the running estimate of a stream's cost (input, output)."""
    input: Decimal
    output: Decimal


class PriceBook:
    """The admin's price rows in memory (the table is small) over genai-prices; lookups are memoised."""

    def __init__(self, prices: list[Price]):
        self._by_provider: dict[str, list[Price]] = {}
        for price in prices:
            self._by_provider.setdefault(price.provider, []).append(price)
        for rows in self._by_provider.values():
            rows.sort(key=lambda p: (p.specificity, p.valid_from), reverse=True)
        self._memo: dict[tuple, list[Price]] = {}
        self._rates: dict[tuple, Rates | None] = {}
        self._unit_costs: dict[tuple, tuple[Decimal | None, Decimal | None]] = {}  # per image, per 1M characters

    @classmethod
    def load(cls) -> "PriceBook":
        from ..models import ModelPrice

        return cls([
            Price(row.provider, row.model_pattern, row.valid_from, row.input_per_million,
                  row.cached_input_per_million, row.output_per_million, row.reasoning_per_million,
                  row.cache_write_per_million,
                  UnitPrices(row.per_image, row.per_audio_minute, row.per_million_characters))
            for row in ModelPrice.objects.all()
        ])

    def lookup(self, provider_type: str, provider_name: str, model: str, when: datetime) -> Price | None:
        """An admin price; one set for the config's own name wins over one for its provider type."""
        key = (provider_type, provider_name, model)
        candidates = self._memo.get(key)
        if candidates is None:
            candidates = []
            for provider in (provider_name, provider_type):
                rows = [p for p in self._by_provider.get(provider, ()) if p.matches(model)]
                if rows:
                    candidates = rows  # already ordered: most specific, then latest valid_from
                    break
            if len(self._memo) > 10_000:
                self._memo.clear()
            self._memo[key] = candidates
        for price in candidates:  # most specific first, then the latest that had started
            if price.valid_from <= when:
                return price
        return None

    def price(self, event: StreamEvent, when: datetime) -> Priced:
        reported = event.reported_cost
        if reported is not None:
            try:
                value = Decimal(reported)
                if value.is_finite() and value >= 0:
                    return Priced(value.quantize(COST_QUANTUM, rounding=ROUND_HALF_EVEN), UPSTREAM)
            except InvalidOperation:
                pass
        if unmeasured(event):
            return Priced(None, UNKNOWN)
        provider_type, model = event.provider_type, event.model
        admin = self.lookup(provider_type, event.provider, model, when)
        # A row that prices tokens only does not price a call measured only in units (it would say 0):
        # genai-prices is asked next, then the cost is unknown.
        if admin is not None and (not units_only(event) or admin_units_cost(admin.units, event) is not None):
            return Priced(event_cost(admin, event), ADMIN)
        cost = price_db_cost(provider_type, model, event, when)
        if cost is not None:
            return Priced(cost, PRICE_DB)
        return Priced(None, UNKNOWN)

    def cost(self, event: StreamEvent, when: datetime) -> Decimal | None:
        return self.price(event, when).cost

    def units_cost(self, provider_type: str, provider_name: str, model: str, images: int = 0,
                   characters: int = 0) -> Decimal | None:
        """Today's price of a media call's units known before the answer (a budget's reservation); None: unknown."""
        if not images and not characters:
            return None
        key = (provider_type, provider_name, model)
        unit = self._unit_costs.get(key)
        if unit is None:  # memoised as `rates` is: ~45 µs of genai-prices per lookup, on the event loop
            now = datetime.now(timezone.utc)
            event = StreamEvent("units", ts=now.timestamp(), provider_type=provider_type, provider=provider_name,
                                model=model, usage_source="none")
            unit = (self.price(event.replace(images=1), now).cost,
                    self.price(event.replace(characters=1_000_000), now).cost)
            if len(self._unit_costs) > 10_000:
                self._unit_costs.clear()
            self._unit_costs[key] = unit
        per_image, per_million_characters = unit
        if (images and per_image is None) or (characters and per_million_characters is None):
            return None
        amount = images * (per_image or 0) + characters * (per_million_characters or 0) / MILLION
        return amount.quantize(COST_QUANTUM, rounding=ROUND_HALF_EVEN)

    def rates(self, provider_type: str, provider_name: str, model: str) -> Rates | None:
        """Today's input and output price per token (admin first, then genai-prices); None: unknown."""
        key = (provider_type, provider_name, model)
        if key in self._rates:
            return self._rates[key]
        now = datetime.now(timezone.utc)
        admin = self.lookup(provider_type, provider_name, model, now)
        rates = None
        if admin is not None:
            rates = Rates(admin.input / MILLION, admin.output / MILLION)
        else:
            unit = StreamEvent("rates", provider_type=provider_type, model=model)
            unit_in = price_db_cost(provider_type, model, unit.replace(prompt_tokens=1_000_000), now)
            unit_out = price_db_cost(provider_type, model, unit.replace(completion_tokens=1_000_000), now)
            if unit_in is not None and unit_out is not None:
                rates = Rates(unit_in / MILLION, unit_out / MILLION)
        if len(self._rates) > 10_000:
            self._rates.clear()
        self._rates[key] = rates
        return rates


def event_price(prices: PriceBook, event: StreamEvent) -> tuple[Decimal | None, str]:
    """(cost, cost_source) of an event: the gateway's figure when it priced it already (a budgeted
    request, so the budget counters and the database agree to the digit), else the price book's."""
    if event.cost_source is not None:
        return (Decimal(event.cost).quantize(COST_QUANTUM) if event.cost is not None else None), event.cost_source
    priced = prices.price(event, event.created_at)
    return priced.cost, priced.source


def _tokens(event: StreamEvent) -> tuple[int, int, int, int, int]:
    """(prompt, cache read, cache write, visible completion, reasoning) with reasoning billed once."""
    prompt, completion, total = event.prompt_tokens, event.completion_tokens, event.total_tokens
    cached = min(event.cached_tokens, prompt)
    written = min(event.cache_write_tokens, prompt - cached)
    reasoning = event.reasoning_tokens
    if reasoning_outside_completion(event.provider_type, prompt, completion, reasoning, total):
        visible = completion
    else:
        reasoning = min(reasoning, completion)
        visible = completion - reasoning
    return prompt, cached, written, visible, reasoning


def units_only(event: StreamEvent) -> bool:
    """A media call measured only in units (no token usage in its answer): unpriced units make it unknown."""
    return has_units(event) and not tokens_reported(event)


def event_cost(price: Price, event: StreamEvent) -> Decimal:
    prompt, cached, written, visible, reasoning = _tokens(event)
    units = admin_units_cost(price.units, event) or Decimal(0)
    cached_price = price.cached_input if price.cached_input is not None else price.input
    write_price = price.cache_write if price.cache_write is not None else price.input
    reasoning_price = price.reasoning if price.reasoning is not None else price.output
    amount = ((prompt - cached - written) * price.input + cached * cached_price + written * write_price
              + visible * price.output + reasoning * reasoning_price) / MILLION + units
    return amount.quantize(COST_QUANTUM, rounding=ROUND_HALF_EVEN)


def price_db_cost(provider_type: str, model: str, event: StreamEvent, when: datetime) -> Decimal | None:
    """The cost by genai-prices (tiers by prompt size, cache reads/writes, price history); None if unknown."""
    provider_id = PRICE_DB_PROVIDERS.get(provider_type)
    if provider_id is None or not model:
        return None
    # Imported here, on first use: ~28 MB and ~28k objects that a gateway worker serving no budgeted
    # request (or one that prices nothing genai-prices knows) never needs.
    import genai_prices

    prompt, cached, written, visible, reasoning = _tokens(event)
    units = price_db_units(event)
    usage = genai_prices.Usage(input_tokens=prompt, cache_read_tokens=cached, cache_write_tokens=written,
                               output_tokens=visible + reasoning, **units)
    try:
        result = genai_prices.calc_price(usage, model, provider_id=provider_id, genai_request_timestamp=when)
    except LookupError:
        return None
    except Exception:  # a price database quirk must never cost an event
        log.exception("genai-prices could not price %s/%s", provider_type, model)
        return None
    if units_only(event) and not price_db_prices_units(result.model_price, units):
        return None  # it knows the model, not what its units cost (dall-e-3's images): unknown, not 0
    return Decimal(result.total_price).quantize(COST_QUANTUM, rounding=ROUND_HALF_EVEN)


def to_e10(cost: Decimal | None) -> int:
    """A quantized cost as an integer number of 1e-10 USD (the roll-ups' and the budget counters' unit)."""
    return int(cost.scaleb(10)) if cost is not None else 0
