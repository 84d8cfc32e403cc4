"""The response cache's rules, through a running gateway (the matrix's miss-then-hit row is in
test_guarantee_matrix.py): off by default, per-request directives, what is never stored, what a hit costs in
limits and budgets, tenant isolation, and the policy a key inherits or overrides."""

from decimal import Decimal

import httpx
import orjson
import pytest

from tests.e2e import test_guarantee_matrix as matrix
from tests.e2e.test_guarantee_matrix import (
    CHAT_JSON,
    CHAT_STREAM,
    RESPONSES_JSON,
    Streamed,
    call,
    ok,
    request_id,
    upstream_calls,
)

pytestmark = [pytest.mark.e2e]
targets, make_key = matrix.targets, matrix.make_key  # the matrix's fixtures: its providers, prices and keys


def header(answer) -> str | None:
    return answer.headers.get("x-gomodel-cache")


def test_off_by_default_nothing_changes(gateway, targets, make_key):
    key = make_key()
    body = CHAT_JSON.body("gpt-4o-mini", "same")
    before = upstream_calls(targets, CHAT_JSON)
    first, second = call(gateway, CHAT_JSON, key, body), call(gateway, CHAT_JSON, key, body)
    assert ok(first) and ok(second)
    assert upstream_calls(targets, CHAT_JSON) == before + 2
    assert header(first) is None and header(second) is None


def post(gateway, key, body, **headers) -> httpx.Response:
    return httpx.post(gateway + "/v1/chat/completions", json=body, timeout=20,
                      headers={"Authorization": f"Bearer {key}", **headers})


def test_no_store_bypasses_and_no_cache_still_stores(gateway, targets, make_key):
    key = make_key(cache_mode="exact")
    body = CHAT_JSON.body("gpt-4o-mini", "directives")
    before = upstream_calls(targets, CHAT_JSON)
    assert header(post(gateway, key, body, **{"Cache-Control": "no-store"})) == "bypass"
    assert header(post(gateway, key, body)) == "miss"  # no-store kept nothing
    assert header(post(gateway, key, body, **{"Cache-Control": "no-cache"})) == "bypass"  # not looked up…
    assert upstream_calls(targets, CHAT_JSON) == before + 3
    assert header(post(gateway, key, body)) == "hit-exact"  # … but its answer is stored


def test_the_ttl_header_is_capped_by_the_policy(gateway, targets, make_key, redis_sync, settings):
    key = make_key(cache_mode="exact", cache_ttl_seconds=50)
    post(gateway, key, CHAT_JSON.body("gpt-4o-mini", "long"), **{"x-gomodel-cache-ttl": "100000"})
    post(gateway, key, CHAT_JSON.body("gpt-4o-mini", "short"), **{"x-gomodel-cache-ttl": "7"})
    ttls = sorted(redis_sync.ttl(name) for name in redis_sync.scan_iter(settings.RESPONSE_CACHE_PREFIX + ":*"))
    assert len(ttls) == 2 and 0 < ttls[0] <= 7 and 40 < ttls[1] <= 50, ttls
    body = CHAT_JSON.body("gpt-4o-mini", "zero")
    assert header(post(gateway, key, body, **{"x-gomodel-cache-ttl": "0"})) == "miss"
    assert header(post(gateway, key, body)) == "miss"  # a TTL of 0 stores nothing


def test_sampled_answers_are_cached_only_with_a_seed_or_when_the_policy_says_so(gateway, targets, make_key):
    key = make_key(cache_mode="exact")
    sampled = {**CHAT_JSON.body("gpt-4o-mini", "creative"), "temperature": 0.7}
    assert header(post(gateway, key, sampled)) == "bypass"
    assert header(post(gateway, key, sampled)) == "bypass"
    seeded = {**sampled, "seed": 7}
    assert [header(post(gateway, key, seeded)) for _ in range(2)] == ["miss", "hit-exact"]
    always = make_key(cache_mode="exact", cache_sampled=True)
    assert [header(post(gateway, always, sampled)) for _ in range(2)] == ["miss", "hit-exact"]


@pytest.mark.parametrize("model", ["fail-500", "fail-400", "fail-429"])
def test_an_error_is_never_stored(gateway, targets, make_key, model):
    key = make_key(cache_mode="exact")
    body = CHAT_JSON.body(model)
    before = upstream_calls(targets, CHAT_JSON)
    answers = [post(gateway, key, body) for _ in range(2)]
    assert [a.status_code for a in answers] == [answers[0].status_code] * 2 and answers[0].status_code >= 400
    assert [header(a) for a in answers] == ["miss", "miss"]
    assert upstream_calls(targets, CHAT_JSON) > before + 1


@pytest.mark.parametrize("model", ["break-stream", "error-event"])
def test_a_broken_stream_is_never_stored(gateway, targets, make_key, model):
    key = make_key(cache_mode="exact")
    body = CHAT_STREAM.body(model)
    answers = [call(gateway, CHAT_STREAM, key, body) for _ in range(2)]
    assert all(isinstance(a, Streamed) and not a.completed for a in answers)
    assert [header(a) for a in answers] == ["miss", "miss"]


def test_a_stream_cut_by_its_budget_is_never_stored(gateway, targets, make_key):
    key = make_key(cache_mode="exact", budget_usd=Decimal("0.001"), budget_period="daily")
    body = CHAT_STREAM.body("long-stream", max_tokens=32)
    first = call(gateway, CHAT_STREAM, key, body)
    assert first.error is not None and first.error["code"] == "budget_exceeded"
    second = call(gateway, CHAT_STREAM, key, body)  # the budget is spent: refused, never served from the cache
    assert not isinstance(second, Streamed) and second.status_code == 429
    assert second.headers["x-gomodel-cache"] == "miss"


def test_a_client_that_hangs_up_leaves_nothing_stored(gateway, targets, make_key):
    key = make_key(cache_mode="exact")
    body = CHAT_STREAM.body("long-stream")
    with httpx.stream("POST", gateway + CHAT_STREAM.path, headers=CHAT_STREAM.headers(key), json=body,
                      timeout=20) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                break
    answer = call(gateway, CHAT_STREAM, key, body)
    assert answer.completed and header(answer) == "miss"


def test_a_hit_replays_the_stream_for_what_this_client_asked(gateway, targets, make_key):
    """stream_options is not in the key: a client that asks for usage gets its usage chunk from a hit too."""
    key = make_key(cache_mode="exact")
    body = CHAT_STREAM.body("gpt-4o-mini", "usage?")
    assert header(call(gateway, CHAT_STREAM, key, body)) == "miss"
    with httpx.stream("POST", gateway + CHAT_STREAM.path, headers=CHAT_STREAM.headers(key), timeout=20,
                      json={**body, "stream_options": {"include_usage": True}}) as response:
        assert response.headers["x-gomodel-cache"] == "hit-exact"
        chunks = [orjson.loads(line[6:]) for line in response.iter_lines()
                  if line.startswith("data: {")]
    usage = [c["usage"] for c in chunks if c.get("usage")]
    assert usage and usage[-1]["total_tokens"] > 0
    assert all(c["provider"] == "groq" for c in chunks)


def test_tenants_never_share_an_answer(gateway, targets, make_key, usage_events):
    from accounting.models import Tenant
    from accounting.tenants.services import do_create_api_key, do_create_tenant

    key_a = make_key(cache_mode="exact")
    other = do_create_tenant("other", cache_mode="exact")
    _, key_b = do_create_api_key(other, name="b")
    body = CHAT_JSON.body("gpt-4o-mini", "byte-identical")
    before = upstream_calls(targets, CHAT_JSON)
    assert header(post(gateway, key_a, body)) == "miss"
    b = post(gateway, key_b, body)
    assert header(b) == "miss" and b.status_code == 200
    assert header(post(gateway, key_b, body)) == "hit-exact"
    assert header(post(gateway, key_a, body)) == "hit-exact"
    assert upstream_calls(targets, CHAT_JSON) == before + 2
    [event] = usage_events(b.headers["x-request-id"])
    assert event["tenant"] == "other" and event["cache"] is None
    assert Tenant.objects.get(slug="other").cache_mode == "exact"


def test_a_key_policy_overrides_its_tenants(gateway, targets, make_key):
    from accounting.models import Tenant
    from accounting.tenants.services import do_create_api_key

    tenant_key = make_key()
    tenant = Tenant.objects.get(slug="matrix")
    tenant.cache_mode = "exact"
    tenant.save()
    _, off = do_create_api_key(tenant, name="off", cache_mode="off")
    body = CHAT_JSON.body("gpt-4o-mini", "policy")
    assert [header(post(gateway, tenant_key, body)) for _ in range(2)] == ["miss", "hit-exact"]  # inherits exact
    assert header(post(gateway, off, body)) is None  # its own policy: off


def test_a_hit_counts_against_rpm_but_not_tpm(gateway, targets, make_key):
    key = make_key(cache_mode="exact", rpm_limit=3, tpm_limit=60)
    body = CHAT_JSON.body("gpt-4o-mini", "x" * 60, max_tokens=10)  # reserves ~27 tokens, uses 17
    miss = post(gateway, key, body)
    assert miss.status_code == 200 and header(miss) == "miss"
    used = int(miss.headers["x-ratelimit-remaining-tokens"])
    hits = [post(gateway, key, body) for _ in range(2)]
    assert [(h.status_code, header(h)) for h in hits] == [(200, "hit-exact")] * 2
    assert int(hits[-1].headers["x-ratelimit-remaining-tokens"]) >= used  # hits took no tokens
    refused = post(gateway, key, body)
    assert refused.status_code == 429 and "requests-per-minute" in refused.json()["error"]["message"]


def test_a_hit_costs_nothing_against_a_budget(gateway, targets, make_key, usage_events):
    key = make_key(cache_mode="exact", budget_usd=Decimal("0.0001"), budget_period="daily")  # ~one call
    body = CHAT_JSON.body("gpt-4o-mini", "budgeted", max_tokens=10)
    miss = post(gateway, key, body)
    [event] = usage_events(miss.headers["x-request-id"])
    assert Decimal(event["cost"]) > 0
    hits = [post(gateway, key, body) for _ in range(5)]  # 5 × the miss's cost would be far over the budget
    assert [(h.status_code, header(h)) for h in hits] == [(200, "hit-exact")] * 5
    for hit in hits:
        [event] = usage_events(hit.headers["x-request-id"])
        assert (event["cost"], event["budget_keys"]) == ("0", [])


def test_a_responses_hit_gets_its_own_id_and_is_stored_under_it(gateway, targets, make_key):
    key = make_key(cache_mode="exact")
    body = {**RESPONSES_JSON.body("gpt-4o-mini", "remember me"), "store": True}
    miss, hit = (httpx.post(gateway + "/v1/responses", json=body, timeout=20,
                            headers={"Authorization": f"Bearer {key}"}) for _ in range(2))
    assert (header(miss), header(hit)) == ("miss", "hit-exact")
    assert miss.json()["id"] != hit.json()["id"]
    again = httpx.get(f"{gateway}/v1/responses/{hit.json()['id']}", headers={"Authorization": f"Bearer {key}"},
                      timeout=20)
    assert again.status_code == 200 and again.json()["output"] == hit.json()["output"]
    assert request_id(hit) != request_id(miss)


def test_a_cache_that_does_not_answer_is_a_miss_never_an_error(gateway, targets, make_key, upstream):
    """The cache's Redis down (a port nothing listens on): every call still answered, from the upstream."""
    import redis.asyncio as aioredis

    from gomodel.gateway import runtime as runtimes

    caches = [runtime.cache for runtime in list(runtimes._runtimes.values())]  # the gateway's among them
    real = [cache.redis for cache in caches]
    for cache in caches:
        cache.redis = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        key = make_key(cache_mode="exact")
        body = CHAT_JSON.body("gpt-4o-mini", "redis is down")
        before = upstream_calls(targets, CHAT_JSON)
        answers = [post(gateway, key, body) for _ in range(2)]
        assert [(a.status_code, header(a)) for a in answers] == [(200, "miss")] * 2
        assert upstream_calls(targets, CHAT_JSON) == before + 2
    finally:
        for cache, client in zip(caches, real):
            cache.redis = client


def test_only_protocols_that_say_so_are_cached(gateway, targets, make_key):
    """count_tokens (and any plug-in that does not set `cacheable`) never goes through the cache."""
    key = make_key(cache_mode="exact")
    body = {"model": "groq/gpt-4o-mini", "messages": [{"role": "user", "content": "count me"}]}
    answers = [httpx.post(gateway + "/v1/messages/count_tokens", json=body, timeout=20,
                          headers={"x-api-key": key, "anthropic-version": "2023-06-01"}) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200]
    assert all("x-gomodel-cache" not in a.headers for a in answers)
