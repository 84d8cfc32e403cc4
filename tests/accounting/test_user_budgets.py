"""A tenant's budget of each end user (issue #23's stretch): every end user a request names has its own
allowance across the tenant's keys, counted like the tenant's and keys' budgets (pending while in the stream,
base from the stored events once drained, never both), refused with 429 budget_exceeded once spent."""

from datetime import datetime, timezone
from decimal import Decimal

import httpx
import pytest

from accounting.budgets import counters
from accounting.budgets.services import db_spend_e10
from accounting.usage.drain import drain
from tests.accounting.test_budgets import ONE_CHAT, assert_budget_exceeded

pytestmark = [pytest.mark.e2e]


def chat(gateway, key, user=None):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], **({"user": user} if user else {})}
    return httpx.post(f"{gateway}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, json=body,
                      timeout=10)


@pytest.fixture
def at(monkeypatch):
    monkeypatch.setattr(counters, "clock", lambda: datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc))


def test_each_end_user_spends_its_own_budget(gateway, provider, tenant_key, usage_events, at, redis_sync):
    tenant, key, secret = tenant_key
    tenant.user_budget_usd, tenant.user_budget_period = Decimal("0.000008"), "daily"  # less than two chats
    tenant.save()
    first = chat(gateway, secret, "alice")
    assert first.status_code == 200, first.text
    [event] = usage_events(first.headers["x-request-id"])
    owner = counters.user_owner(tenant.id, "alice")
    name = counters.counter("user", owner, "daily", counters.clock())
    assert name in event["budget_keys"] and event["cost_e10"] == int(ONE_CHAT * 10**10)
    assert chat(gateway, secret, "alice").status_code == 200  # 5.1e-6 spent of 8e-6: admitted
    usage_events(None, expect=2)
    refused = chat(gateway, secret, "alice")
    assert_budget_exceeded(refused, "43200")
    assert "end user's daily budget" in refused.json()["error"]["message"]
    assert chat(gateway, secret, "bob").status_code == 200  # another end user: its own allowance
    assert chat(gateway, secret).status_code == 200  # no end user named: no end-user budget

    # drained: the spend moves from pending to base, once, and alice is still refused
    assert drain().inserted == 4
    assert db_spend_e10("user", owner, *counters.window("daily", counters.clock())) == 2 * int(ONE_CHAT * 10**10)
    assert int(redis_sync.get(name + ":base")) == 2 * int(ONE_CHAT * 10**10)
    assert int(redis_sync.get(name + ":pending") or 0) == 0
    assert_budget_exceeded(chat(gateway, secret, "alice"), "43200")


def test_counter_names_round_trip():
    owner = counters.user_owner(7, "a:b c/é")
    name = counters.counter("user", owner, "monthly", datetime(2026, 11, 25, tzinfo=timezone.utc))
    assert counters.parse_counter(name) == ("user", owner, "monthly", datetime(2026, 11, 1).date())
    assert counters.parse_user_owner(owner) == (7, "a:b c/é")
    assert counters.parse_counter(name.replace(owner, "7.zz")) is None
