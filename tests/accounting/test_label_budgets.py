"""A tenant's budget per label value (issue #23): `team:search` has its own allowance across the tenant's keys,
held in the same reservation as the key's and tenant's budgets — refused with 429 budget_exceeded naming the
label once spent, a stream cut mid-way and billed what it relayed — while the key's other labels keep working;
counted like the other budgets (pending while in the stream, base from the stored events once drained), and shown
on the label's row of `/v1/usage?group_by=label`."""

import math
from datetime import datetime, timezone
from decimal import Decimal

import httpx
import orjson
import pytest
from django.conf import settings
from django.core.exceptions import ValidationError

from accounting.budgets import counters
from accounting.budgets.services import db_spend_e10
from accounting.labels import LabelError, check_label_budgets
from accounting.models import ModelPrice, Tenant
from accounting.usage.drain import drain
from tests.accounting.test_budgets import (
    ONE_CHAT,
    assert_budget_exceeded,
    receiver,  # noqa: F401  (a fixture: the webhook's receiving end)
)

pytestmark = [pytest.mark.e2e]
MASTER = {"Authorization": f"Bearer {settings.GOMODEL_MASTER_KEY}"}


def chat(gateway, key, labels, stream=False, model="gpt-4o-mini"):
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "stream": stream}
    return httpx.post(f"{gateway}/v1/chat/completions", json=body, timeout=10,
                      headers={"Authorization": f"Bearer {key}", "x-gomodel-labels": labels})


def stream(gateway, key, labels):
    """(request id, text received, the error event or None, whether it ended with [DONE]) of one long stream."""
    text, error, done = [], None, False
    with httpx.stream("POST", f"{gateway}/v1/chat/completions", timeout=20,
                      headers={"Authorization": f"Bearer {key}", "x-gomodel-labels": labels},
                      json={"model": "long-stream", "stream": True,
                            "messages": [{"role": "user", "content": "Hi"}]}) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            done = done or line == "data: [DONE]"
            if line.startswith("data: {"):
                payload = orjson.loads(line[6:])
                if "error" in payload:
                    error = payload["error"]
                else:
                    text.extend(c["delta"].get("content") or "" for c in payload["choices"])
        return response.headers["x-request-id"], "".join(text), error, done


@pytest.fixture
def at(monkeypatch):
    monkeypatch.setattr(counters, "clock", lambda: datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc))


def test_a_label_budget_cuts_a_stream_and_refuses_while_other_labels_work(gateway, provider, tenant_key,
                                                                           usage_events, at, redis_sync):
    tenant, key, secret = tenant_key
    # "long-stream" relays ~1,450 characters; at $10 / M output tokens the whole answer would be ~$0.0036.
    ModelPrice.objects.create(provider="openai", model_pattern="long-stream", input_per_million=Decimal("1"),
                              output_per_million=Decimal("10"), valid_from=datetime(2020, 1, 1, tzinfo=timezone.utc))
    tenant.label_budgets = {"team:search": {"usd": "0.001", "period": "daily"}}
    tenant.full_clean()
    tenant.save()

    request_id, text, error, done = stream(gateway, secret, "team:search,env:prod")
    assert not done, "a cut stream must not end as if complete"
    assert error is not None and (error["type"], error["code"]) == ("rate_limit_error", "budget_exceeded")
    assert 0 < len(text) < len("Hello from the fake upstream!") * 50  # cut mid-way
    [event] = usage_events(request_id)
    completion, prompt = math.ceil(len(text) / 4), 3 + 4 + 1
    cost = (prompt * Decimal(1) + completion * Decimal(10)) / 1_000_000
    assert (event["completion_tokens"], Decimal(event["cost"]), event["status"]) == (completion, cost, 429)
    assert Decimal("0.001") <= cost <= Decimal("0.001") + 10 * Decimal(10) / 1_000_000  # billed what was relayed
    owner = counters.user_owner(tenant.id, "team:search")
    name = counters.counter("label", owner, "daily", counters.clock())
    assert name in event["budget_keys"]

    refused = chat(gateway, secret, "team:search")
    assert_budget_exceeded(refused, "43200")  # Wednesday 12:00 → Thursday 00:00
    assert "label team:search's daily budget" in refused.json()["error"]["message"]
    assert chat(gateway, secret, "team:ads").status_code == 200  # another label of the same key
    assert chat(gateway, secret, "").status_code == 200  # no label at all
    assert stream(gateway, secret, "team:ads")[2:] == (None, True)  # a whole stream for another label

    # /v1/usage?group_by=label: the budgeted label's row carries its budget, the others null
    rows = httpx.get(f"{gateway}/v1/usage?group_by=label&start=2026-11-01",  # the clock's month, as the events'
                     headers={"Authorization": f"Bearer {secret}"}, timeout=10).json()["data"]
    search = next(row for row in rows if row["label"] == "team:search")
    assert search["budget"]["limit_usd"] == "0.001" and search["budget"]["period"] == "daily"
    assert Decimal(search["budget"]["spent_usd"]) == cost and search["budget"]["remaining_usd"] == "0"
    assert search["budget"]["exceeded"] is True
    assert "budget" not in next(row for row in rows if row["label"] == "team:ads")  # not budgeted: as before
    api = httpx.get(f"{gateway}/api/v1/tenants/acme/usage/", params={"group_by": "label", "start": "2026-11-01"},
                    headers=MASTER, timeout=10)
    assert api.status_code == 200 and api.json()["data"] == rows, api.text  # the management API: the same

    # drained: the spend moves from pending to base (summed from the stored events), once; still refused
    usage_events(None, expect=4)
    assert drain().inserted == 4
    assert db_spend_e10("label", owner, *counters.window("daily", counters.clock())) == int(cost * 10**10)
    assert int(redis_sync.get(name + ":base")) == int(cost * 10**10)
    assert int(redis_sync.get(name + ":pending") or 0) == 0
    assert_budget_exceeded(chat(gateway, secret, "team:search"), "43200")

    # the reconcile (Redis flushed of this counter) restores it from the stored events
    redis_sync.delete(name + ":base")
    from accounting.budgets.tasks import reconcile_budgets
    reconcile_budgets()
    assert int(redis_sync.get(name + ":base")) == int(cost * 10**10)


@pytest.mark.parametrize("value, message", [
    ([], "must be an object"),
    ({"team": {"usd": "1"}}, "name:value"),
    ({"team:a,b:c": {"usd": "1"}}, "one label"),
    ({" team:a": {"usd": "1"}}, "one label"),
    ({"team: a": {"usd": "1"}}, "one label"),
    ({"team:a": {"usd": "-1"}}, "from 0"),
    ({"team:a": {"usd": "1.00000000001"}}, "10 decimals"),
    ({"team:a": {"usd": True}}, "decimal number"),
    ({"team:a": {}}, "'usd'"),
    ({"team:a": {"usd": "1", "period": "total"}}, "'period'"),
    ({"team:a": {"usd": "1", "rpm": 3}}, "'usd'"),
])
def test_label_budgets_out_of_bounds_are_refused(value, message):
    with pytest.raises(LabelError, match=message):
        check_label_budgets(value)


def test_label_budgets_validated_on_the_model(transactional_db):
    tenant = Tenant(slug="t", label_budgets={"team:a": {"usd": "x"}})
    with pytest.raises(ValidationError):
        tenant.full_clean()
    tenant.label_budgets = {"team:a": {"usd": 200, "period": "weekly"}, "env:prod": {"usd": "0.5"}}
    tenant.full_clean()
    tenant.save()
    owned = counters.label_budgets_of(tenant)
    assert [(n, v, b.limit_usd, b.period) for n, v, b in owned] == [
        ("team", "a", Decimal(200), "weekly"), ("env", "prod", Decimal("0.5"), "monthly")]
    name = owned[0][2].counter(datetime(2026, 11, 25, tzinfo=timezone.utc))
    assert counters.parse_counter(name)[0] == "label" and counters.label_of(owned[0][2]) == "team:a"


def test_an_end_users_row_carries_its_budget(gateway, provider, tenant_key, usage_events, at):
    tenant, key, secret = tenant_key
    tenant.user_budget_usd, tenant.user_budget_period = Decimal("0.01"), "weekly"
    tenant.save()
    for user in ("alice", ""):
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}],
                **({"user": user} if user else {})}
        assert httpx.post(f"{gateway}/v1/chat/completions", headers={"Authorization": f"Bearer {secret}"}, json=body,
                          timeout=10).status_code == 200
    usage_events(None, expect=2)
    rows = {row["user"]: row for row in httpx.get(
        f"{gateway}/v1/usage?group_by=user&start=2026-11-01", headers={"Authorization": f"Bearer {secret}"},
        timeout=10).json()["data"]}
    budget = rows["alice"]["budget"]
    assert (budget["limit_usd"], budget["spent_usd"], budget["period"]) == ("0.01", rows["alice"]["cost_usd"], "weekly")
    assert Decimal(budget["remaining_usd"]) == Decimal("0.01") - Decimal(budget["spent_usd"])
    assert "budget" not in rows[None]  # no end user: no budget
    api = httpx.get(f"{gateway}/api/v1/tenants/acme/usage/", params={"group_by": "user", "start": "2026-11-01"},
                    headers=MASTER, timeout=10)
    assert api.json()["data"] == list(rows.values())


@pytest.mark.parametrize("value", [{"team": {"usd": "1"}}, {"team:a": {"usd": "-1"}}, ["team:a"],
                                   {"team:a": {"usd": "1", "period": "total"}}])
def test_bad_label_budgets_are_refused_by_the_api(gateway, tenant_key, value):
    response = httpx.patch(f"{gateway}/api/v1/tenants/acme/", json={"label_budgets": value}, timeout=10,
                           headers=MASTER)
    assert response.status_code == 400 and "label_budgets" in response.json(), response.text
    ok = httpx.patch(f"{gateway}/api/v1/tenants/acme/", json={"label_budgets": {"team:a": {"usd": "5"}}},
                     timeout=10, headers=MASTER)
    assert ok.status_code == 200 and ok.json()["label_budgets"] == {"team:a": {"usd": "5"}}, ok.text


def test_the_soft_limit_webhook_names_the_label(gateway, provider, tenant_key, usage_events, receiver, at):  # noqa: F811
    tenant, key, secret = tenant_key
    tenant.label_budgets = {"team:search": {"usd": "0.00002"}}  # monthly; two chats (0.0000102) cross 40 %
    tenant.budget_soft_percent = 40
    tenant.save()
    for labels in ("team:search", "team:search", "team:ads"):
        usage_events(chat(gateway, secret, labels).headers["x-request-id"])
        drain()
    assert len(receiver) == 1
    payload = orjson.loads(receiver[0][1])
    assert payload == {"event": "budget.soft_limit", "scope": "label", "tenant": "acme", "api_key_prefix": None,
                       "period": "monthly", "period_start": "2026-11-01", "period_end": "2026-12-01T00:00:00+00:00",
                       "limit_usd": "0.00002", "spent_usd": str(2 * ONE_CHAT), "soft_limit_percent": 40,
                       "label": "team:search"}
