"""GET /v1/usage: a tenant's own totals and rows, from the roll-ups plus the events not drained yet,
equal to its stored events; two tenants never see each other's numbers."""

import calendar
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import httpx
import pytest

from accounting.models import UsageEvent
from accounting.prices.defaults import load_default_prices
from accounting.tenants.services import do_create_api_key, do_create_tenant
from accounting.usage import drain as drain_module
from accounting.usage import events as usage_event
from accounting.usage.drain import drain
from accounting.usage.events import StreamEvent

pytestmark = [pytest.mark.e2e]
TOKEN_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "reasoning_tokens")


@pytest.fixture
def tenants(transactional_db):
    load_default_prices()
    made = {}
    for slug in ("acme", "globex"):
        tenant = do_create_tenant(slug)
        made[slug] = [do_create_api_key(tenant, name=f"{slug}-{i}") for i in range(2)]
    return made


def chat(gateway, key, stream=False, model="gpt-4o-mini"):
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "stream": stream}
    with httpx.stream("POST", f"{gateway}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json=body, timeout=10) as response:
        response.read()
        return response.headers["x-request-id"]


def usage(gateway, key, **params):
    return httpx.get(f"{gateway}/v1/usage", headers={"Authorization": f"Bearer {key}"}, params=params, timeout=10)


def expected_from_events(tenant_slug):
    rows = UsageEvent.objects.filter(tenant__slug=tenant_slug)
    totals = {"requests": rows.count(), **{f: sum(getattr(r, f) for r in rows) for f in TOKEN_FIELDS}}
    costs = [r.cost for r in rows if r.cost is not None]
    totals["cost_usd"] = format(sum(costs, Decimal(0)).normalize(), "f") if costs else None
    totals["cache_hits"] = sum(1 for r in rows if r.cache)
    totals.update(images=0, audio_seconds=0.0, characters=0)  # no media calls here
    totals["cost_saved_usd"] = format(sum((r.cost_saved_usd or Decimal(0) for r in rows), Decimal(0)).normalize(), "f")
    return totals


def test_usage_counts_drained_and_undrained_events_per_tenant(gateway, provider, tenants, redis_sync, settings,
                                                               usage_events):
    (acme_key, acme_secret), (acme_key2, acme_secret2) = tenants["acme"]
    (globex_key, globex_secret), _ = tenants["globex"]
    ids = [chat(gateway, acme_secret) for _ in range(3)] + [chat(gateway, acme_secret2, stream=True)]
    usage_events(None, expect=4)
    assert drain().inserted == 4
    # Not drained yet: they must show at once all the same.
    ids += [chat(gateway, acme_secret), chat(gateway, acme_secret, model="tool-model")]
    globex_ids = [chat(gateway, globex_secret) for _ in range(2)]
    usage_events(None, expect=8)

    acme_now = usage(gateway, acme_secret)
    assert acme_now.status_code == 200, acme_now.text
    body = acme_now.json()
    today = datetime.now(timezone.utc).date()
    assert (body["object"], body["tenant"]) == ("usage", "acme")
    assert body["start"] == today.replace(day=1).isoformat()
    assert body["end"] == today.replace(day=calendar.monthrange(today.year, today.month)[1]).isoformat()
    assert body["totals"]["requests"] == 6
    assert body["totals"]["prompt_tokens"] == 6 * 11 and body["totals"]["completion_tokens"] == 5 * 6 + 6
    # Rows per day × provider × model × key, labelled with the key's display prefix.
    rows = {(r["model"], r["api_key"]): r for r in body["data"]}
    assert set(rows) == {("gpt-4o-mini", acme_key.prefix), ("gpt-4o-mini", acme_key2.prefix),
                         ("tool-model", acme_key.prefix)}
    assert rows[("gpt-4o-mini", acme_key.prefix)]["requests"] == 4
    assert rows[("tool-model", acme_key.prefix)]["cost_usd"] is None  # no price known: null, not "0"
    assert all(r["date"] == today.isoformat() and r["provider"] == "openai" for r in body["data"])
    assert body["totals"]["total_tokens"] == sum(r["total_tokens"] for r in body["data"])

    globex_now = usage(gateway, globex_secret).json()
    assert globex_now["tenant"] == "globex" and globex_now["totals"]["requests"] == 2
    assert {r["api_key"] for r in globex_now["data"]} == {globex_key.prefix}
    assert usage(gateway, globex_secret, tenant="acme").json()["tenant"] == "globex"  # a key sees its tenant only

    # Once everything is drained the answer is the same, and equals the stored events.
    assert drain().inserted == 4
    assert set(UsageEvent.objects.values_list("request_id", flat=True)) == set(ids + globex_ids)
    for secret, slug, before in ((acme_secret, "acme", body), (globex_secret, "globex", globex_now)):
        after = usage(gateway, secret).json()
        assert after == before
        assert after["totals"] == expected_from_events(slug)
    assert Decimal(body["totals"]["cost_usd"]) == sum(Decimal(r["cost_usd"] or 0) for r in body["data"])


def test_an_event_both_stored_and_still_in_the_stream_counts_once(gateway, provider, tenants, usage_events,
                                                                  monkeypatch):
    _, secret = tenants["acme"][0]
    chat(gateway, secret)
    usage_events(None, expect=1)
    monkeypatch.setattr(drain_module, "ack", lambda client, ids, *budget: None)  # committed, then the worker died
    assert drain().inserted == 1
    assert usage(gateway, secret).json()["totals"]["requests"] == 1


def test_date_range(gateway, provider, tenants, redis_sync, settings):
    tenant_key = tenants["acme"][0]
    _, secret = tenant_key
    key = tenant_key[0]
    old = datetime(2025, 1, 15, 12, tzinfo=timezone.utc)
    for ts in (old, old + timedelta(days=1), datetime.now(timezone.utc)):
        redis_sync.xadd(settings.USAGE_STREAM, {"e": usage_event.encode(StreamEvent(
            request_id=f"req_{ts.timestamp()}", ts=ts.timestamp(), tenant_id=key.tenant_id, tenant="acme",
            api_key_id=key.id, api_key_prefix=key.prefix, provider="openai", provider_type="openai",
            model="gpt-4o-mini", status=200, prompt_tokens=10, completion_tokens=1,
            total_tokens=11, usage_source="reported"))})
    drain()
    january = usage(gateway, secret, start="2025-01-01", end="2025-01-31").json()
    assert (january["start"], january["end"], january["totals"]["requests"]) == ("2025-01-01", "2025-01-31", 2)
    assert [r["date"] for r in january["data"]] == ["2025-01-15", "2025-01-16"]
    assert usage(gateway, secret, start="2025-01-16", end="2025-01-16").json()["totals"]["requests"] == 1
    assert usage(gateway, secret, start="2025-01-01").json()["end"] == "2025-01-31"
    assert usage(gateway, secret).json()["totals"]["requests"] == 1  # this month only

    for params, param in [({"start": "2025-13-01"}, "start"), ({"end": "yesterday"}, "end"),
                          ({"start": "2025-02-01", "end": "2025-01-01"}, "end"),
                          ({"start": "2020-01-01", "end": "2025-01-01"}, "end")]:
        bad = usage(gateway, secret, **params)
        assert bad.status_code == 400, params
        assert bad.json()["error"]["type"] == "invalid_request_error" and bad.json()["error"]["param"] == param


def test_auth_and_the_master_key(gateway, provider, tenants, usage_events):
    _, secret = tenants["globex"][0]
    chat(gateway, secret)
    usage_events(None, expect=1)
    assert httpx.get(f"{gateway}/v1/usage").status_code == 401
    assert usage(gateway, "sk_gom_nope").status_code == 401
    master = "sk_master_test_0123456789"
    assert usage(gateway, master).status_code == 400
    assert usage(gateway, master, tenant="nobody").status_code == 404
    assert usage(gateway, master, tenant="globex\x00").status_code == 404  # not a slug: no query at all
    answer = usage(gateway, master, tenant="globex").json()
    assert (answer["tenant"], answer["totals"]["requests"]) == ("globex", 1)
    assert httpx.post(f"{gateway}/v1/usage", headers={"Authorization": f"Bearer {secret}"}).status_code == 405


def test_usage_answers_from_the_database_when_the_stream_cannot_be_read(gateway, provider, tenants, usage_events,
                                                                          monkeypatch):
    from gomodel.gateway.runtime import _runtimes

    _, secret = tenants["acme"][0]
    chat(gateway, secret)
    usage_events(None, expect=1)
    drain()

    async def down(*args, **kwargs):
        raise ConnectionError("redis down")

    for runtime in list(_runtimes.values()):
        monkeypatch.setattr(runtime.redis, "xrange", down)
    answer = usage(gateway, secret)
    assert answer.status_code == 200 and answer.json()["totals"]["requests"] == 1
