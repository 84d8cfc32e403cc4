"""Prices (list, create, update) and a tenant's usage through the management API. The usage answer is
the one GET /v1/usage gives (the same roll-up function), for any range."""

from datetime import date, timedelta

import httpx
import pytest
from django.conf import settings

from accounting.models import AuditEntry, ModelPrice
from accounting.usage.drain import drain

MASTER = {"Authorization": f"Bearer {settings.GOMODEL_MASTER_KEY}"}
PRICE = {"provider": "openai", "model_pattern": "gpt-4o-mini*", "input_per_million": "0.15",
         "output_per_million": "0.60"}


def test_price_crud(api):
    response = api.post("/api/v1/prices/", PRICE, format="json")
    assert response.status_code == 201, response.content
    price = response.json()
    assert price["input_per_million"] == "0.150000" and price["cached_input_per_million"] is None
    assert price["valid_from"]  # defaults to now
    listing = api.get("/api/v1/prices/", {"provider": "openai"}).json()
    assert price["id"] in {p["id"] for p in listing["results"]}
    assert api.get("/api/v1/prices/", {"search": "gpt-4o-mini"}).json()["count"] >= 1
    assert api.get("/api/v1/prices/", {"provider": "nobody"}).json()["count"] == 0

    response = api.patch(f"/api/v1/prices/{price['id']}/", {"cached_input_per_million": "0.075",
                                                            "note": "list price"}, format="json")
    assert response.status_code == 200 and response.json()["cached_input_per_million"] == "0.075000"
    response = api.put(f"/api/v1/prices/{price['id']}/", {**PRICE, "output_per_million": "0.5"}, format="json")
    assert response.status_code == 200 and response.json()["output_per_million"] == "0.500000"
    assert api.get(f"/api/v1/prices/{price['id']}/").json()["note"] == "list price"
    assert api.delete(f"/api/v1/prices/{price['id']}/").status_code == 405  # prices are history: never deleted

    entries = AuditEntry.objects.filter(object_type="modelprice").order_by("id")
    assert [(e.action, e.actor) for e in entries] == [("create", api.actor), ("update", api.actor),
                                                       ("update", api.actor)]
    assert entries[1].changes["cached_input_per_million"] == [None, "0.075000"]


def test_per_unit_prices_through_the_api(api):
    payload = {"provider": "openai", "model_pattern": "dall-e-3", "input_per_million": "0", "output_per_million": "0",
               "per_image": "0.04", "per_audio_minute": "0.006", "per_million_characters": "15"}
    response = api.post("/api/v1/prices/", payload, format="json")
    assert response.status_code == 201, response.content
    price = response.json()
    assert (price["per_image"], price["per_audio_minute"], price["per_million_characters"]) == (
        "0.040000", "0.006000", "15.000000")
    assert api.post("/api/v1/prices/", {**PRICE, "per_image": "-0.01"}, format="json").status_code == 400
    assert api.post("/api/v1/prices/", PRICE, format="json").json()["per_image"] is None  # empty: no unit price


@pytest.mark.parametrize("payload, field", [
    ({**PRICE, "input_per_million": "-1"}, "input_per_million"),
    ({**PRICE, "output_per_million": "abc"}, "output_per_million"),
    ({**PRICE, "input_per_million": "1234567890.1"}, "input_per_million"),
    ({"provider": "openai"}, "model_pattern"),
])
def test_price_validation(api, payload, field):
    response = api.post("/api/v1/prices/", payload, format="json")
    assert response.status_code == 400 and field in response.json(), response.content


def test_the_same_price_twice_is_400(api):
    payload = {**PRICE, "valid_from": "2026-01-01T00:00:00Z"}
    assert api.post("/api/v1/prices/", payload, format="json").status_code == 201
    response = api.post("/api/v1/prices/", payload, format="json")
    assert response.status_code == 400 and "non_field_errors" in response.json()
    assert ModelPrice.objects.filter(model_pattern=PRICE["model_pattern"], valid_from__year=2026).count() == 1


def chat(gateway, key, model="gpt-4o-mini"):
    response = httpx.post(f"{gateway}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                          json={"model": model, "messages": [{"role": "user", "content": "Hi"}]}, timeout=10)
    assert response.status_code == 200, response.text
    return response.headers["x-request-id"]


@pytest.mark.e2e
def test_tenant_usage_is_the_v1_usage_answer(gateway, provider, tenant_key, usage_events):
    from accounting.prices.defaults import load_default_prices

    load_default_prices()
    tenant, _, plaintext = tenant_key
    for _ in range(3):
        chat(gateway, plaintext)
    usage_events(None, expect=3)
    assert drain().inserted == 3
    chat(gateway, plaintext, model="tool-model")  # not drained yet: counted all the same
    usage_events(None, expect=1)

    url = f"{gateway}/api/v1/tenants/{tenant.pk}/usage/"
    ours = httpx.get(url, headers=MASTER, timeout=10)
    assert ours.status_code == 200, ours.text
    theirs = httpx.get(f"{gateway}/v1/usage", headers={"Authorization": f"Bearer {plaintext}"}, timeout=10)
    body, key_view = ours.json(), theirs.json()
    assert body["rate_limits"] == {"key": None, "tenant": key_view["rate_limits"]["tenant"]}
    key_view["rate_limits"]["key"] = None  # the tenant's report cannot show one key's limits
    assert body == key_view
    assert body["tenant"] == tenant.slug and body["totals"]["requests"] == 4
    assert {row["model"] for row in body["data"]} == {"gpt-4o-mini", "tool-model"}

    today = date.today()
    params = {"start": (today - timedelta(days=3)).isoformat(), "end": today.isoformat()}
    ranged = httpx.get(url, headers=MASTER, params=params, timeout=10).json()
    key_view = httpx.get(f"{gateway}/v1/usage", headers={"Authorization": f"Bearer {plaintext}"},
                         params=params, timeout=10).json()
    key_view["rate_limits"]["key"] = None
    assert ranged == key_view
    # any range: more than the year /v1/usage allows
    params = {"start": "2020-01-01", "end": (today + timedelta(days=1)).isoformat()}
    assert httpx.get(f"{gateway}/v1/usage", headers={"Authorization": f"Bearer {plaintext}"}, params=params,
                     timeout=10).status_code == 400
    wide = httpx.get(url, headers=MASTER, params=params, timeout=10).json()
    assert (wide["start"], wide["totals"]["requests"]) == ("2020-01-01", 4)
    past = httpx.get(url, headers=MASTER, params={"start": "2020-01-01", "end": "2020-12-31"}, timeout=10).json()
    # an empty period cost nothing
    assert past["totals"]["requests"] == 0 and past["data"] == [] and past["totals"]["cost_usd"] == "0"


@pytest.mark.e2e
def test_tenant_usage_validation(gateway, tenant_key):
    tenant = tenant_key[0]
    url = f"{gateway}/api/v1/tenants/{tenant.pk}/usage/"
    response = httpx.get(url, headers=MASTER, params={"start": "2026-02-30", "end": "yesterday"}, timeout=10)
    assert response.status_code == 400 and set(response.json()) == {"start", "end"}
    response = httpx.get(url, headers=MASTER, params={"start": "2026-02-01", "end": "2026-01-01"}, timeout=10)
    assert response.status_code == 400 and "end" in response.json()
    assert httpx.get(f"{gateway}/api/v1/tenants/987654/usage/", headers=MASTER, timeout=10).status_code == 404
    only_start = httpx.get(url, headers=MASTER, params={"start": "2024-02-10"}, timeout=10).json()
    assert (only_start["start"], only_start["end"]) == ("2024-02-10", "2024-02-29")
    response = httpx.get(url, headers={"Authorization": f"Bearer {tenant_key[2]}"}, timeout=10)
    assert response.status_code == 403
