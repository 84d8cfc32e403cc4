"""accounting.prices.book: which price applies, and what an event costs (reasoning neither missed nor
billed twice), against the usage the providers really returned."""

from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from accounting.prices.book import Price, PriceBook, event_cost, reasoning_outside_completion
from accounting.prices.defaults import DEFAULT_PRICES, load_default_prices
from accounting.usage.events import StreamEvent
from providers.base import Usage

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "recorded"
NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)


def price(provider, pattern, inp, out, cached=None, reasoning=None, valid_from=EPOCH):
    d = lambda v: Decimal(v) if v is not None else None  # noqa: E731
    return Price(provider, pattern, valid_from, d(inp), d(cached), d(out), d(reasoning))


def recorded_event(provider_type: str, name: str) -> tuple[StreamEvent, dict]:
    body = orjson.loads((RECORDED / provider_type / name).read_bytes())
    usage = Usage.from_openai(body["usage"])
    event = StreamEvent(request_id="req_recorded", provider=provider_type, provider_type=provider_type,
                        model=body["model"], prompt_tokens=usage.prompt_tokens,
                        completion_tokens=usage.completion_tokens, total_tokens=usage.total_tokens,
                        cached_tokens=usage.cached_tokens, reasoning_tokens=usage.reasoning_tokens)
    return event, body


def test_xai_reasoning_is_billed_on_top_of_completion_and_matches_xais_own_cost():
    event, body = recorded_event("xai", "chat_completion.json")
    assert (event.prompt_tokens, event.completion_tokens, event.reasoning_tokens,
            event.total_tokens, event.cached_tokens) == (10, 35, 375, 420, 3)
    book = PriceBook([price(*row[:2], row[2], row[4], cached=row[3], reasoning=row[5])
                      for row in DEFAULT_PRICES if row[0] == "xai"])
    cost = book.cost(event, NOW)
    # 7 × 0.30 + 3 × 0.075 + (35 + 375) × 0.50 per million; xAI's own figure, in 1e-10 USD ticks:
    assert cost == Decimal("0.000207325")
    assert cost == Decimal(body["usage"]["cost_in_usd_ticks"]).scaleb(-10)


def test_openai_reasoning_is_inside_completion_and_billed_once():
    event, _ = recorded_event("openai", "chat_completion_reasoning.json")
    assert (event.completion_tokens, event.reasoning_tokens, event.total_tokens) == (85, 64, 98)
    same_price = price("openai", "o3-mini*", "1.10", "4.40", cached="0.55")
    # 13 × 1.10 + 85 × 4.40 (the 64 reasoning tokens are a part of the 85), per million
    assert event_cost(same_price, event) == Decimal("0.0003883")
    split = price("openai", "o3-mini*", "1.10", "4.40", reasoning="1.00")
    assert event_cost(split, event) == (13 * Decimal("1.10") + 21 * Decimal("4.40") + 64 * Decimal("1.00")) / 10**6


@pytest.mark.parametrize("provider_type, prompt, completion, reasoning, total, outside", [
    ("openai", 13, 85, 64, 98, False),  # total = prompt + completion: inside
    ("xai", 10, 35, 375, 420, True),  # reasoning > completion: cannot be inside
    ("groq", 10, 100, 40, 150, True),  # total = prompt + completion + reasoning: outside, whoever says it
    ("xai", 10, 100, 40, 110, False),  # the numbers win over the provider default
    ("xai", 10, 100, 40, 0, True),  # no total: the provider rule
    ("openai", 10, 100, 40, 0, False),
    ("xai", 10, 35, 0, 45, False),  # no reasoning, nothing to decide
])
def test_reasoning_rule(provider_type, prompt, completion, reasoning, total, outside):
    assert reasoning_outside_completion(provider_type, prompt, completion, reasoning, total) is outside


def test_cached_tokens_use_the_cached_price_and_fall_back_to_the_input_price():
    event = StreamEvent(request_id="r", provider_type="openai", prompt_tokens=1000, completion_tokens=100,
                        cached_tokens=400, total_tokens=1100)
    assert event_cost(price("openai", "m", "2", "8", cached="0.5"), event) == Decimal("0.0022")  # 600×2+400×.5+100×8
    assert event_cost(price("openai", "m", "2", "8"), event) == Decimal("0.0028")
    # cached can never exceed the prompt (a provider reporting it outside prompt_tokens is clamped)
    assert event_cost(price("openai", "m", "2", "8", cached="0.5"), event.replace(cached_tokens=5000)) == \
        Decimal("0.0013")


def test_the_most_specific_price_wins_and_a_config_name_beats_its_provider_type():
    book = PriceBook([
        price("openai", "gpt-4o*", "2.50", "10"),
        price("openai", "gpt-4o-mini*", "0.15", "0.60"),
        price("openai", "gpt-4o-mini", "0.20", "0.80"),
        price("openai-eu", "gpt-4o-mini*", "0.30", "1.20"),
    ])
    assert book.lookup("openai", "openai", "gpt-4o-mini", NOW).input == Decimal("0.20")  # exact
    assert book.lookup("openai", "openai", "gpt-4o-mini-2024-07-18", NOW).input == Decimal("0.15")  # longer glob
    assert book.lookup("openai", "openai", "gpt-4o-2024-08-06", NOW).input == Decimal("2.50")
    assert book.lookup("openai", "openai-eu", "gpt-4o-mini", NOW).input == Decimal("0.30")  # the config's own
    assert book.lookup("openai", "openai", "gpt-3.5-turbo", NOW) is None
    assert book.cost(StreamEvent(request_id="r", provider_type="openai", provider="openai", model="unknown",
                                 prompt_tokens=5), NOW) is None  # unknown price: None, not 0


def test_a_new_price_applies_from_its_valid_from_on():
    change = datetime(2026, 3, 1, tzinfo=timezone.utc)
    book = PriceBook([price("deepseek", "deepseek-chat", "0.27", "1.10"),
                      price("deepseek", "deepseek-chat", "0.28", "0.42", valid_from=change),
                      price("deepseek", "deepseek-*", "9", "9", valid_from=datetime(2030, 1, 1, tzinfo=timezone.utc))])
    assert book.lookup("deepseek", "deepseek", "deepseek-chat", datetime(2026, 2, 28, tzinfo=timezone.utc)).input == \
        Decimal("0.27")
    assert book.lookup("deepseek", "deepseek", "deepseek-chat", change).input == Decimal("0.28")
    assert book.lookup("deepseek", "deepseek", "deepseek-reasoner", NOW) is None  # its only price starts in 2030


def test_cost_is_rounded_half_even_to_1e_10_usd():
    event = StreamEvent(request_id="r", provider_type="openai", prompt_tokens=1, completion_tokens=0)
    assert event_cost(price("openai", "m", "0.00015", "0"), event) == Decimal("2E-10")  # 1.5e-10
    assert event_cost(price("openai", "m", "0.00025", "0"), event) == Decimal("2E-10")
    assert event_cost(price("openai", "m", "0.00035", "0"), event) == Decimal("4E-10")


def test_default_table_loads_once_and_the_price_db_prices_the_seed_providers(db):
    from accounting.models import ModelPrice

    ModelPrice.objects.all().delete()
    assert load_default_prices() == len(DEFAULT_PRICES)
    assert load_default_prices() == 0  # idempotent; edited rows are never overwritten
    book = PriceBook.load()
    when = datetime.now(timezone.utc)
    for provider_type, model in [("openai", "gpt-4o-mini"), ("openai", "gpt-4o-mini-2024-07-18"),
                                 ("openai", "gpt-4o"), ("openai", "o3-mini-2025-01-31"),
                                 ("anthropic", "claude-sonnet-4-20250514"), ("gemini", "gemini-2.5-flash"),
                                 ("groq", "llama-3.3-70b-versatile"), ("deepseek", "deepseek-chat"),
                                 ("xai", "grok-3-mini"), ("zai", "glm-4.5")]:
        event = StreamEvent("r", provider=provider_type, provider_type=provider_type, model=model, prompt_tokens=10)
        assert book.price(event, when).source == "price_db", (provider_type, model)
    assert book.lookup("bailian", "bailian", "qwen-plus-latest", when).input == Decimal("0.40")
    assert book.price(StreamEvent("r", provider_type="bailian", model="qwen-plus", prompt_tokens=1),
                      when).source == "admin"
    unknown = book.price(StreamEvent("r", provider_type="ollama", model="llama3", prompt_tokens=10), when)
    assert (unknown.cost, unknown.source) == (None, "unknown")
