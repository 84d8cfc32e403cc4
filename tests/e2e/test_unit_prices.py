"""Media calls priced per unit (issue #22), through the openai SDK against the fake upstream: whisper by the second
and tts by the character at genai-prices' prices, dall-e by the image at the admin's, an admin unit price over
genai-prices', a call with units and no price unpriced (null, never 0) in the stored row and in /v1/usage, and a
budget that refuses and is charged by images.

Hand-computed costs (the pinned genai-prices: whisper-1 $0.36 per audio hour = $0.006 a minute, tts-1 $15 per
million input characters; it has no dall-e price):
  whisper-1, 3 s (the fake's `usage.seconds`):     3 × 0.36 / 3600         = 0.0003
  the same at an admin $0.012 a minute:            3 × 0.012 / 60          = 0.0006
  tts-1, "Hello there" (11 characters):            11 × 15 / 1 000 000     = 0.000165
  dall-e-3, n=2 at an admin $0.04 an image:        2 × 0.04                = 0.08
"""

from datetime import datetime, timezone
from decimal import Decimal

import httpx
import openai
import pytest

from accounting.budgets import counters as budgets
from accounting.models import ModelPrice, UsageEvent
from accounting.usage.drain import drain

pytestmark = [pytest.mark.e2e]

AUDIO = b"RIFF" + bytes(range(256)) * 40
SINCE = datetime(2020, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def client(gateway, provider, tenant_key):
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key=tenant_key[2], max_retries=0)


def admin_price(model, **units):
    ModelPrice.objects.create(provider="openai", model_pattern=model, input_per_million=Decimal(0),
                              output_per_million=Decimal(0), valid_from=SINCE, **units)


def images_sent(upstream):
    return sum(r["path"].endswith("/images/generations") for r in upstream.requests)


def stored(usage_events, raw):
    """The call's event on the stream, then its row once drained."""
    request_id = raw.headers["x-request-id"]
    [event] = usage_events(request_id)
    assert drain().inserted == 1
    return event, UsageEvent.objects.get(request_id=request_id)


def test_whisper_is_billed_by_the_second(client, usage_events):
    raw = client.audio.transcriptions.with_raw_response.create(model="openai/whisper-1",
                                                               file=("talk.wav", AUDIO, "audio/wav"))
    event, row = stored(usage_events, raw)
    assert (event["audio_seconds"], event["usage_source"]) == (3.0, "none")
    assert (row.audio_seconds, row.cost, row.cost_source) == (Decimal("3.000"), Decimal("0.0003"), "price_db")


def test_a_transcript_answered_as_text_says_no_seconds_and_is_unpriced(client, usage_events):
    raw = client.audio.transcriptions.with_raw_response.create(
        model="openai/whisper-1", file=("talk.wav", AUDIO, "audio/wav"), response_format="text")
    event, row = stored(usage_events, raw)
    assert (event["audio_seconds"], event["usage_source"]) == (0.0, "none")
    assert (row.cost, row.cost_source) == (None, "unknown")


def test_an_admin_unit_price_overrides_genai_prices(client, usage_events):
    admin_price("whisper-1", per_audio_minute=Decimal("0.012"))
    raw = client.audio.translations.with_raw_response.create(model="openai/whisper-1",
                                                             file=("talk.wav", AUDIO, "audio/wav"))
    _, row = stored(usage_events, raw)
    assert (row.cost, row.cost_source) == (Decimal("0.0006"), "admin")


def test_a_token_only_admin_row_does_not_make_units_free(client, usage_events):
    admin_price("whisper-*")  # tokens at 0, no unit price: genai-prices' per-second price still applies
    raw = client.audio.transcriptions.with_raw_response.create(model="openai/whisper-1",
                                                               file=("talk.wav", AUDIO, "audio/wav"))
    _, row = stored(usage_events, raw)
    assert (row.cost, row.cost_source) == (Decimal("0.0003"), "price_db")


def test_tts_is_billed_by_the_character(client, usage_events):
    raw = client.audio.speech.with_raw_response.create(model="openai/tts-1", voice="alloy", input="Hello there")
    event, row = stored(usage_events, raw)
    assert event["characters"] == 11
    assert (row.characters, row.cost, row.cost_source) == (11, Decimal("0.000165"), "price_db")


def test_dall_e_is_billed_by_the_image_at_the_admins_price(client, usage_events):
    admin_price("dall-e-3", per_image=Decimal("0.04"))
    raw = client.images.with_raw_response.generate(model="openai/dall-e-3", prompt="a red square", n=2)
    assert len(raw.parse().data) == 2
    event, row = stored(usage_events, raw)
    assert event["images"] == 2
    assert (row.images, row.cost, row.cost_source) == (2, Decimal("0.08"), "admin")


def test_gpt_image_keeps_its_token_price_and_counts_its_image(client, usage_events):
    raw = client.images.with_raw_response.generate(model="openai/gpt-image-1", prompt="a red square")
    _, row = stored(usage_events, raw)
    # genai-prices: 10 input tokens × $5/M + 100 output tokens × $40/M; no per-image price on top
    assert (row.images, row.cost, row.cost_source) == (1, Decimal("0.00405"), "price_db")


def test_units_without_a_price_are_unpriced_not_free(gateway, client, tenant_key, usage_events):
    raw = client.images.with_raw_response.generate(model="openai/dall-e-3", prompt="a red square")
    event, row = stored(usage_events, raw)
    assert event["images"] == 1
    assert (row.cost, row.cost_source) == (None, "unknown")
    report = httpx.get(f"{gateway}/v1/usage", headers={"Authorization": f"Bearer {tenant_key[2]}"}, timeout=10).json()
    [line] = [r for r in report["data"] if r["model"] == "dall-e-3"]
    assert (line["requests"], line["images"], line["cost_usd"]) == (1, 1, None)
    assert report["totals"]["cost_usd"] is None


def test_v1_usage_sums_the_units_stored_and_not_yet_drained(gateway, client, tenant_key, usage_events):
    whisper = client.audio.transcriptions.with_raw_response.create(model="openai/whisper-1",
                                                                   file=("talk.wav", AUDIO, "audio/wav"))
    stored(usage_events, whisper)  # drained: from the roll-up
    speech = client.audio.speech.with_raw_response.create(model="openai/tts-1", voice="alloy", input="Hello there")
    usage_events(speech.headers["x-request-id"])  # not drained: from the stream
    report = httpx.get(f"{gateway}/v1/usage", headers={"Authorization": f"Bearer {tenant_key[2]}"}, timeout=10).json()
    rows = {r["model"]: r for r in report["data"]}
    assert (rows["whisper-1"]["audio_seconds"], rows["whisper-1"]["cost_usd"]) == (3.0, "0.0003")
    assert (rows["tts-1"]["characters"], rows["tts-1"]["cost_usd"]) == (11, "0.000165")
    totals = report["totals"]
    assert (totals["audio_seconds"], totals["characters"], totals["images"], totals["cost_usd"]) == (
        3.0, 11, 0, "0.000465")
    by_user = httpx.get(f"{gateway}/v1/usage", headers={"Authorization": f"Bearer {tenant_key[2]}"},
                        params={"group_by": "user"}, timeout=10).json()
    assert by_user["totals"] == totals  # the breakdown, summed from the events, agrees


def test_a_budget_refuses_and_is_charged_by_images(client, upstream, tenant_key, usage_events, monkeypatch):
    now = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
    monkeypatch.setattr(budgets, "clock", lambda: now)
    admin_price("dall-e-3", per_image=Decimal("1"))
    _, key, _ = tenant_key
    key.budget_usd, key.budget_period = Decimal("1.5"), "daily"
    key.save()

    with pytest.raises(openai.RateLimitError) as refused:  # two images cost more than is left
        client.images.generate(model="openai/dall-e-3", prompt="a red square", n=2)
    assert refused.value.body["code"] == "budget_exceeded"
    assert images_sent(upstream) == 0

    raw = client.images.with_raw_response.generate(model="openai/dall-e-3", prompt="a red square")
    [event] = usage_events(raw.headers["x-request-id"])
    assert (event["cost"], event["cost_source"], event["cost_e10"]) == ("1", "admin", 10**10)

    with pytest.raises(openai.RateLimitError):  # $0.5 left: one more image does not fit
        client.images.generate(model="openai/dall-e-3", prompt="a red square")
    assert images_sent(upstream) == 1


def test_a_budget_refuses_speech_whose_characters_alone_cost_more_than_is_left(client, tenant_key, usage_events,
                                                                                 monkeypatch):
    now = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
    monkeypatch.setattr(budgets, "clock", lambda: now)
    _, key, _ = tenant_key
    key.budget_usd, key.budget_period = Decimal("0.0001"), "daily"
    key.save()
    with pytest.raises(openai.RateLimitError) as refused:  # 10 characters × $15/M = $0.00015 > $0.0001
        client.audio.speech.create(model="openai/tts-1", voice="alloy", input="x" * 10)
    assert "alone" in refused.value.body["message"]
    raw = client.audio.speech.with_raw_response.create(model="openai/tts-1", voice="alloy", input="x" * 6)
    [event] = usage_events(raw.headers["x-request-id"])
    assert (event["cost"], event["cost_source"], event["cost_e10"]) == ("0.00009", "price_db", 900_000)
