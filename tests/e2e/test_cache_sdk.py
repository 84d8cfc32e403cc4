"""The response cache through the official SDKs, on every endpoint, JSON and stream: miss then hit, the
x-gomodel-cache header, the replayed answer parsed by the SDK, and the figures billed — the hit's cost 0 and
its saving exactly what the miss cost, in the stored rows and in /v1/usage."""

from decimal import Decimal

import anthropic
import httpx
import openai
import pytest

from tests.e2e import test_guarantee_matrix as matrix

pytestmark = [pytest.mark.e2e]
targets, make_key = matrix.targets, matrix.make_key


@pytest.fixture
def key(targets, make_key):
    return make_key(cache_mode="exact")


@pytest.fixture
def oai(gateway, key):
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key=key, max_retries=0)


@pytest.fixture
def claude(gateway, key):
    return anthropic.Anthropic(base_url=gateway, api_key=key, max_retries=0)


def twice(make) -> list:
    """(header, request id, what the SDK parsed) for two identical calls."""
    out = []
    for _ in range(2):
        raw = make()
        out.append((raw.headers["x-gomodel-cache"], raw.headers["x-request-id"], raw.parse()))
    return out


def stream_text(stream) -> str:
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def drained_pair(miss_id: str, hit_id: str):
    from accounting.models import UsageEvent
    from accounting.usage.drain import drain

    drain()
    return UsageEvent.objects.get(request_id=miss_id), UsageEvent.objects.get(request_id=hit_id)


def assert_billed(miss_id: str, hit_id: str):
    miss, hit = drained_pair(miss_id, hit_id)
    assert (miss.cache, miss.cost_saved_usd) == ("", None) and miss.cost > 0
    assert (hit.cache, hit.cost, hit.cost_source) == ("exact", Decimal(0), "cache")
    assert hit.cost_saved_usd == miss.cost  # the same tokens, priced as the provider charges them
    assert (hit.prompt_tokens, hit.completion_tokens) == (miss.prompt_tokens, miss.completion_tokens)


def test_chat_json(oai):
    (h1, miss, first), (h2, hit, second) = twice(lambda: oai.chat.completions.with_raw_response.create(
        model="groq/gpt-4o-mini", messages=[{"role": "user", "content": "sdk chat"}]))
    assert (h1, h2) == ("miss", "hit-exact")
    assert second.choices[0].message.content == first.choices[0].message.content
    assert second.usage.total_tokens == first.usage.total_tokens
    assert_billed(miss, hit)


def test_chat_stream(oai):
    (h1, miss, first), (h2, hit, second) = twice(lambda: oai.chat.completions.with_raw_response.create(
        model="groq/gpt-4o-mini", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "sdk stream"}]))
    assert (h1, h2) == ("miss", "hit-exact")
    first_chunks, second_chunks = list(first), list(second)
    assert stream_text(second_chunks) == stream_text(first_chunks) != ""
    assert second_chunks[-1].usage.total_tokens == first_chunks[-1].usage.total_tokens
    finish = [c.choices[0].finish_reason for c in second_chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]
    assert_billed(miss, hit)


def test_embeddings(oai):
    (h1, miss, first), (h2, hit, second) = twice(lambda: oai.embeddings.with_raw_response.create(
        model="groq/text-embedding-3-small", input="sdk embed"))
    assert (h1, h2) == ("miss", "hit-exact")
    assert second.data[0].embedding == first.data[0].embedding
    assert_billed(miss, hit)


@pytest.mark.parametrize("provider", ["groq", "openai"])  # translated, native
def test_responses_json_and_stream(oai, provider):
    (h1, miss, first), (h2, hit, second) = twice(lambda: oai.responses.with_raw_response.create(
        model=f"{provider}/gpt-4o-mini", input="sdk responses", store=False))
    assert (h1, h2) == ("miss", "hit-exact")
    assert second.output_text == first.output_text != "" and second.id != first.id
    assert_billed(miss, hit)
    (h1, miss, first), (h2, hit, second) = twice(lambda: oai.responses.with_raw_response.create(
        model=f"{provider}/gpt-4o-mini", input="sdk responses", store=False, stream=True))
    assert (h1, h2) == ("miss", "hit-exact")
    events = [list(first), list(second)]
    texts = ["".join(e.delta for e in run if e.type == "response.output_text.delta") for run in events]
    assert texts[0] == texts[1] != ""
    assert [run[-1].type for run in events] == ["response.completed"] * 2
    assert events[1][-1].response.usage.total_tokens == events[0][-1].response.usage.total_tokens
    assert_billed(miss, hit)


@pytest.mark.parametrize("provider", ["groq", "anthropic"])  # translated, native
def test_messages_json_and_stream(claude, provider):
    body = {"model": f"{provider}/claude-sonnet-4-5", "max_tokens": 64,
            "messages": [{"role": "user", "content": "sdk messages"}]}
    (h1, miss, first), (h2, hit, second) = twice(lambda: claude.messages.with_raw_response.create(**body))
    assert (h1, h2) == ("miss", "hit-exact")
    assert second.content == first.content and second.usage == first.usage
    assert_billed(miss, hit)
    (h1, miss, first), (h2, hit, second) = twice(lambda: claude.messages.with_raw_response.create(**body,
                                                                                                  stream=True))
    assert (h1, h2) == ("miss", "hit-exact")
    events = [list(first), list(second)]
    texts = ["".join(e.delta.text for e in run if e.type == "content_block_delta" and e.delta.type == "text_delta")
             for run in events]
    assert texts[0] == texts[1] != ""
    assert [run[-1].type for run in events] == ["message_stop"] * 2
    assert_billed(miss, hit)


def test_usage_shows_hits_and_savings(gateway, oai, key):
    body = {"model": "groq/gpt-4o-mini", "messages": [{"role": "user", "content": "usage report"}]}
    oai.chat.completions.create(**body)
    for _ in range(3):
        oai.chat.completions.create(**body)
    report = httpx.get(f"{gateway}/v1/usage", headers={"Authorization": f"Bearer {key}"}, timeout=20).json()
    totals = report["totals"]
    assert (totals["requests"], totals["cache_hits"]) == (4, 3)
    assert Decimal(totals["cost_saved_usd"]) == 3 * Decimal(totals["cost_usd"])  # three free copies of the one miss
    [row] = report["data"]
    assert row["cache_hits"] == 3 and row["cost_saved_usd"] == totals["cost_saved_usd"]
    from accounting.usage.drain import drain

    drain()  # the same figures from the roll-ups
    again = httpx.get(f"{gateway}/v1/usage", headers={"Authorization": f"Bearer {key}"}, timeout=20).json()
    assert again["totals"] == totals


def test_dashboard_statement_and_metrics_show_hits(gateway, oai, key, settings):
    from accounting.models import Tenant
    from accounting.usage.drain import drain
    from gomodel.dashboard.services import monthly_statement, overview, parse_filters, parse_month, statement_csv

    body = {"model": "groq/gpt-4o-mini", "messages": [{"role": "user", "content": "dashboard"}]}
    for _ in range(4):
        oai.chat.completions.create(**body)
    drain()
    totals = overview(parse_filters({}))["totals"]
    assert (totals["requests"], totals["cache_hits"], totals["hit_rate"]) == (4, 3, 0.75)
    assert Decimal(totals["cost_saved_usd"]) == 3 * Decimal(totals["cost_usd"]) > 0
    first, last = parse_month(None)
    statement = monthly_statement(Tenant.objects.get(slug="matrix"), first, last)
    csv = statement_csv(statement).splitlines()
    assert csv[0].endswith(",cost_usd,cache_hits,cost_saved_usd")
    assert csv[-1].split(",")[-2:] == ["3", totals["cost_saved_usd"]]
    settings.METRICS_PUBLIC = True
    text = httpx.get(f"{gateway}/metrics", timeout=20).text
    assert 'gomodel_cache_lookups_total{endpoint="/v1/chat/completions",result="hit"}' in text
    assert "gomodel_cache_lookup_seconds_bucket" in text and "gomodel_cache_stored_total" in text
