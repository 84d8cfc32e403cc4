"""Media calls' non-token units (images, seconds of audio, characters of speech input) and their prices.

A usage event carries the units its call consumed (accounting/usage/events.py). A price source — an admin
`ModelPrice` row, then genai-prices — bills each unit it has a price for, on top of the tokens it bills:

    images × per-image price + audio seconds × per-minute price / 60 + characters × per-1M-characters price / 1M

An event whose only measure is units (no token usage reported: dall-e-3, whisper-1, tts-1) is priced by a
source only when that source prices at least one of its units; when none does, the cost is unknown (null),
never 0. An event with reported tokens and units (gpt-image-1's tokens and its image count) is billed by its
tokens, plus any unit price the source has.
"""

from dataclasses import dataclass
from decimal import Decimal

# The endpoints whose calls are measured by units when their answer reports no tokens. A 200 from one of them with
# neither (a transcription answered as text or srt says nothing of the audio's length) is unpriced, not free.
UNIT_ENDPOINTS = frozenset({"/v1/images/generations", "/v1/images/edits", "/v1/audio/speech",
                            "/v1/audio/transcriptions", "/v1/audio/translations"})
SECONDS_QUANTUM = Decimal("0.001")  # audio seconds are kept to the millisecond (UsageEvent.audio_seconds)
MINUTE, MILLION = Decimal(60), Decimal(1_000_000)


@dataclass(frozen=True)
class UnitPrices:
    """An admin row's per-unit prices, USD; None: this row has no price for that unit."""
    per_image: Decimal | None = None
    per_audio_minute: Decimal | None = None
    per_million_characters: Decimal | None = None


def audio_seconds(value: object) -> Decimal:
    """A duration as reported (int, float or decimal string) as exact non-negative seconds; 0 when unusable."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        return Decimal(0)
    try:
        seconds = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except ArithmeticError:
        return Decimal(0)
    if not seconds.is_finite() or seconds <= 0 or seconds >= 10**9:
        return Decimal(0)
    return seconds.quantize(SECONDS_QUANTUM)


def has_units(event) -> bool:
    return bool(event.images or event.characters or audio_seconds(event.audio_seconds))


def unmeasured(event) -> bool:
    """A media call that succeeded without tokens or units to bill: what it cost is unknown (never 0)."""
    return (event.endpoint in UNIT_ENDPOINTS and event.status == 200 and not tokens_reported(event)
            and not has_units(event))


def tokens_reported(event) -> bool:
    return event.usage_source != "none"


def admin_units_cost(prices: UnitPrices, event) -> Decimal | None:
    """What an admin row's unit prices bill for the event's units; None: it prices none of them."""
    amount, priced = Decimal(0), False
    seconds = audio_seconds(event.audio_seconds)
    if event.images and prices.per_image is not None:
        amount += event.images * prices.per_image
        priced = True
    if seconds and prices.per_audio_minute is not None:
        amount += seconds * prices.per_audio_minute / MINUTE
        priced = True
    if event.characters and prices.per_million_characters is not None:
        amount += event.characters * prices.per_million_characters / MILLION
        priced = True
    return amount if priced else None


def price_db_units(event) -> dict[str, int | Decimal]:
    """The event's units as genai-prices' usage fields (it has no per-image price: images are not among them)."""
    usage: dict[str, int | Decimal] = {}
    seconds = audio_seconds(event.audio_seconds)
    if seconds:
        usage["audio_seconds"] = seconds
    if event.characters:
        usage["input_characters"] = event.characters
    return usage


def price_db_prices_units(model_price, usage: dict[str, int | Decimal]) -> bool:
    """Whether genai-prices' price for the model has a price for any of the units in `usage`."""
    keys = {"audio_seconds": ("audio_hours", "input_audio_hours"), "input_characters": ("input_mchars",)}
    return any(getattr(model_price, key, None) is not None for unit in usage for key in keys[unit])
