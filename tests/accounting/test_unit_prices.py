"""accounting.prices.units through the price book: a media call's units billed exactly (to the millisecond of audio),
added to its tokens where both are priced, and unknown — never 0 — when only unpriced units measure the call."""

from datetime import datetime, timezone
from decimal import Decimal

from accounting.prices.book import Price, PriceBook
from accounting.prices.units import UnitPrices, audio_seconds
from accounting.usage.events import StreamEvent, decode, encode

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)


def row(pattern, inp="0", out="0", **units):
    return Price("openai", pattern, EPOCH, Decimal(inp), None, Decimal(out), None, None,
                 UnitPrices(**{k: Decimal(v) for k, v in units.items()}))


def media(model, **fields):
    return StreamEvent("req_1", provider="openai", provider_type="openai", model=model,
                       **{"usage_source": "none", **fields})


def test_whisper_fractional_seconds_at_genai_prices_price_exactly():
    # 8.47 s × $0.36 / 3600 s = 0.000847 (no float rounding on the way)
    priced = PriceBook([]).price(media("whisper-1", audio_seconds=8.47), NOW)
    assert (priced.cost, priced.source) == (Decimal("0.000847"), "price_db")


def test_admin_units_add_to_its_tokens():
    book = PriceBook([row("gpt-image-1", inp="5", out="40", per_image="0.01")])
    event = media("gpt-image-1", usage_source="reported", prompt_tokens=10, completion_tokens=100,
                  total_tokens=110, images=2)
    # 10 × 5/1M + 100 × 40/1M + 2 × 0.01
    assert book.price(event, NOW).cost == Decimal("0.02405")


def test_units_only_and_no_unit_price_anywhere_is_unknown():
    book = PriceBook([row("dall-e-*")])  # tokens only: it says nothing of images
    assert book.price(media("dall-e-3", images=1), NOW).source == "unknown"
    assert book.price(media("dall-e-3", images=1), NOW).cost is None


def test_characters_per_million_and_audio_per_minute():
    book = PriceBook([row("tts-1", per_million_characters="30"), row("whisper-1", per_audio_minute="0.006")])
    assert book.price(media("tts-1", characters=1000), NOW).cost == Decimal("0.03")
    assert book.price(media("whisper-1", audio_seconds=90.5), NOW).cost == Decimal("0.00905")


def test_the_reservation_price_of_known_units():
    book = PriceBook([row("dall-e-3", per_image="0.04")])
    assert book.units_cost("openai", "openai", "dall-e-3", images=3) == Decimal("0.12")
    assert book.units_cost("openai", "openai", "tts-1", characters=1_000_000) == Decimal("15")
    assert book.units_cost("openai", "openai", "dall-e-2", images=1) is None


def test_units_travel_on_the_stream_and_odd_values_are_dropped():
    event = decode(encode(media("whisper-1", images=0, audio_seconds=3.25, characters=7)))
    assert (event.audio_seconds, event.characters) == (3.25, 7)
    assert decode(b'{"request_id": "r", "audio_seconds": "nan", "images": -2, "characters": true}').replace(
        request_id="r", ts=0) == StreamEvent("r", ts=0)
    assert audio_seconds(float("inf")) == audio_seconds(-1) == audio_seconds(True) == Decimal(0)
