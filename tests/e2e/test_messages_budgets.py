"""Budgets on /v1/messages, as on chat, in Anthropic's protocol: a spent budget or a prompt that alone costs
more than is left is a 429 rate_limit_error before any upstream call; a stream is cut where the budget runs
out with an `error` event and billed for what the client got."""

from datetime import datetime, timezone
from decimal import Decimal

import httpx
import orjson
import pytest

from accounting.budgets import counters as budgets
from accounting.models import ModelPrice

pytestmark = [pytest.mark.e2e]

HELLO = [{"role": "user", "content": "Hi"}]


@pytest.fixture(autouse=True)
def at(monkeypatch):
    now = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)  # a Wednesday: a daily budget resets in 12 h
    monkeypatch.setattr(budgets, "clock", lambda: now)


def post(gateway, key, **body):
    return httpx.post(f"{gateway}/v1/messages", headers={"x-api-key": key},
                      json={"model": "gpt-4o-mini", "max_tokens": 100, "messages": HELLO, **body}, timeout=30)


def assert_refused(response):
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    assert response.headers["retry-after"] == "43200"
    return body["error"]["message"]


def test_a_prompt_that_alone_costs_more_than_is_left_and_a_spent_budget_are_refused(gateway, provider, upstream,
                                                                                     tenant_key, usage_events):
    tenant, key, secret = tenant_key
    key.budget_usd, key.budget_period = Decimal("0.0001"), "daily"
    key.save()
    for stream in (False, True):
        big = post(gateway, secret, stream=stream, messages=[{"role": "user", "content": "x" * 4_000_000}])
        assert "prompt alone" in assert_refused(big)
        assert usage_events(big.headers["x-request-id"], expect=1, timeout=0.3) == []
    assert upstream.chat_requests() == []
    assert post(gateway, secret).status_code == 200  # a small prompt still fits

    key.budget_usd = Decimal("0.000000001")  # less than that one request cost: spent
    key.save()
    assert "budget" in assert_refused(post(gateway, secret))


def test_a_budget_cuts_a_long_stream_with_an_error_event(gateway, provider, tenant_key, usage_events):
    tenant, key, secret = tenant_key
    ModelPrice.objects.create(provider="openai", model_pattern="long-stream", input_per_million=Decimal("1"),
                              output_per_million=Decimal("10"), valid_from=datetime(2020, 1, 1, tzinfo=timezone.utc))
    key.budget_usd, key.budget_period = Decimal("0.001"), "daily"
    key.save()
    with httpx.stream("POST", f"{gateway}/v1/messages", headers={"x-api-key": secret}, timeout=10,
                      json={"model": "long-stream", "max_tokens": 1000, "messages": HELLO, "stream": True}) as response:
        assert response.status_code == 200
        text = response.read().decode()
        request_id = response.headers["x-request-id"]
    assert "text_delta" in text and "message_stop" not in text
    last = text.strip().split("\n\n")[-1]
    assert last.startswith("event: error\ndata: ")
    assert orjson.loads(last.split("data: ", 1)[1])["error"]["type"] == "rate_limit_error"
    [event] = usage_events(request_id)
    assert (event["status"], event["usage_source"]) == (429, "estimated")
    assert event["completion_tokens"] > 0
