"""One known request per provider, priced: the usage as each provider's adapter reads it, the cost as
the provider's published price says (worked out by hand here), and where the figure came from."""

from datetime import datetime, timezone
from decimal import Decimal

import orjson
import pytest

from accounting.prices.book import Price, PriceBook
from accounting.usage.events import StreamEvent
from providers.anthropic.response import convert_usage
from providers.base import Usage
from providers.gemini.response import usage_from

WHEN = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
M = Decimal(1_000_000)


def event(provider_type: str, model: str, usage: Usage, provider: str | None = None) -> StreamEvent:
    return StreamEvent("req_1", provider=provider or provider_type, provider_type=provider_type, model=model,
                       prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                       total_tokens=usage.total_tokens, cached_tokens=usage.cached_tokens,
                       reasoning_tokens=usage.reasoning_tokens, cache_write_tokens=usage.cache_write_tokens,
                       reported_cost=usage.reported_cost)


def priced(e: StreamEvent, book: PriceBook | None = None):
    result = (book or PriceBook([])).price(e, WHEN)
    return result.cost, result.source


def test_openai_gpt_4o_mini_with_cached_input():
    usage = Usage.from_openai({"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
                               "prompt_tokens_details": {"cached_tokens": 1024}})
    # $0.15 / M input, $0.075 / M cached input, $0.60 / M output
    expected = (176 * Decimal("0.15") + 1024 * Decimal("0.075") + 300 * Decimal("0.60")) / M
    assert priced(event("openai", "gpt-4o-mini", usage)) == (expected, "price_db")


def test_anthropic_cache_writes_cost_1_25_times_the_input_price():
    _, usage = convert_usage({"input_tokens": 100, "cache_creation_input_tokens": 2000,
                              "cache_read_input_tokens": 5000, "output_tokens": 400})
    assert (usage.prompt_tokens, usage.cached_tokens, usage.cache_write_tokens) == (7100, 5000, 2000)
    # Claude Sonnet 4.5: $3 input, $3.75 cache write (1.25 × 3), $0.30 cache read, $15 output per M
    expected = (100 * Decimal(3) + 2000 * Decimal("3.75") + 5000 * Decimal("0.30") + 400 * Decimal(15)) / M
    assert priced(event("anthropic", "claude-sonnet-4-5", usage)) == (expected, "price_db")


def test_anthropic_long_context_tier_above_200k_prompt_tokens():
    _, usage = convert_usage({"input_tokens": 250_000, "output_tokens": 1000})
    # Above 200k prompt tokens the whole request is billed at $6 input / $22.50 output per M
    expected = (250_000 * Decimal(6) + 1000 * Decimal("22.5")) / M
    assert priced(event("anthropic", "claude-sonnet-4-5", usage)) == (expected, "price_db")


def test_gemini_cache_reads_at_a_tenth_and_the_long_context_tier():
    short, _ = usage_from({"promptTokenCount": 10_000, "cachedContentTokenCount": 8_000,
                           "candidatesTokenCount": 500, "thoughtsTokenCount": 200})
    # Gemini 2.5 Pro up to 200k: $1.25 input, $0.125 cache read (10 %, not 25 %), $10 output (thinking too)
    expected = (2_000 * Decimal("1.25") + 8_000 * Decimal("0.125") + 700 * Decimal(10)) / M
    assert priced(event("gemini", "gemini-2.5-pro", short)) == (expected, "price_db")
    long, _ = usage_from({"promptTokenCount": 300_000, "cachedContentTokenCount": 100_000,
                          "candidatesTokenCount": 1_000})
    # Above 200k: $2.50 input, $0.25 cache read, $15 output
    expected = (200_000 * Decimal("2.5") + 100_000 * Decimal("0.25") + 1_000 * Decimal(15)) / M
    assert priced(event("gemini", "gemini-2.5-pro", long)) == (expected, "price_db")


def test_xai_reports_its_own_cost_in_ticks():
    raw = {"prompt_tokens": 10, "completion_tokens": 35, "total_tokens": 420,
           "prompt_tokens_details": {"cached_tokens": 3}, "completion_tokens_details": {"reasoning_tokens": 375},
           "cost_in_usd_ticks": 2073250}
    usage = Usage.from_openai(raw)
    assert priced(event("xai", "grok-3-mini", usage)) == (Decimal("0.000207325"), "upstream")  # 1 tick = 1e-10 USD
    # The price database agrees: 7 × $0.30 + 3 × $0.075 + (35 + 375) × $0.50 per M
    del raw["cost_in_usd_ticks"]
    expected = (7 * Decimal("0.30") + 3 * Decimal("0.075") + 410 * Decimal("0.50")) / M
    assert priced(event("xai", "grok-3-mini", Usage.from_openai(raw))) == (expected, "price_db")


def test_openrouter_reports_its_own_cost():
    usage = Usage.from_openai(orjson.loads(b'{"prompt_tokens": 14, "completion_tokens": 9, "total_tokens": 23,'
                                           b' "cost": 0.0000123}'))
    assert priced(event("openrouter", "meta-llama/llama-3.1-8b-instruct", usage)) == (Decimal("0.0000123"),
                                                                                       "upstream")


def test_openrouter_without_a_reported_cost_is_priced_by_the_price_db():
    usage = Usage.from_openai({"prompt_tokens": 1000, "completion_tokens": 1000, "total_tokens": 2000})
    # OpenRouter's meta-llama/llama-3.1-8b-instruct: $0.02 input, $0.03 output per M
    expected = (1000 * Decimal("0.02") + 1000 * Decimal("0.03")) / M
    assert priced(event("openrouter", "meta-llama/llama-3.1-8b-instruct", usage)) == (expected, "price_db")


@pytest.mark.parametrize("provider_type, model, input_price, cached_price, output_price", [
    ("groq", "llama-3.3-70b-versatile", "0.59", "0.59", "0.79"),
    ("zai", "glm-4.6", "0.60", "0.11", "2.20"),
    ("minimax", "MiniMax-M2", "0.30", "0.03", "1.20"),
    ("deepseek", "deepseek-chat", "0.27", "0.07", "1.10"),  # 12:00 UTC: the standard hours' price
])
def test_openai_format_providers(provider_type, model, input_price, cached_price, output_price):
    usage = Usage.from_openai({"prompt_tokens": 3000, "completion_tokens": 500, "total_tokens": 3500,
                               "prompt_tokens_details": {"cached_tokens": 1000} if cached_price != input_price
                               else {}})
    cached = usage.cached_tokens
    expected = ((3000 - cached) * Decimal(input_price) + cached * Decimal(cached_price)
                + 500 * Decimal(output_price)) / M
    assert priced(event(provider_type, model, usage)) == (expected, "price_db")


def test_an_admin_price_overrides_the_price_db_and_unknown_models_stay_null():
    usage = Usage.from_openai({"prompt_tokens": 1000, "completion_tokens": 1000, "total_tokens": 2000})
    book = PriceBook([Price("openai", "gpt-4o-mini*", datetime(2025, 1, 1, tzinfo=timezone.utc), Decimal(1), None,
                            Decimal(2), None)])
    assert priced(event("openai", "gpt-4o-mini", usage), book) == (Decimal("0.003"), "admin")
    assert priced(event("ollama", "llama3", usage)) == (None, "unknown")
    assert priced(event("openai", "no-such-model", usage)) == (None, "unknown")


def test_rates_for_the_stream_estimate():
    rates = PriceBook([]).rates("openai", "openai", "gpt-4o-mini")
    assert (rates.input, rates.output) == (Decimal("0.15") / M, Decimal("0.60") / M)
    assert PriceBook([]).rates("ollama", "ollama", "llama3") is None
