"""Rate limits and model allow-lists seen from a client (one gateway; the cross-process counts are in
tests/integration/test_limits_two_servers.py): statuses, envelopes, headers, what reached the upstream
and what was recorded."""

import time

import httpx
import openai
import orjson
import pytest

from tests.e2e.test_errors import assert_envelope

pytestmark = [pytest.mark.e2e]

HELLO = [{"role": "user", "content": "Hello"}]
RATE_HEADERS = ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests")
TOKEN_HEADERS = ("x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens")


@pytest.fixture
def make_key(transactional_db):
    from accounting.models import Tenant
    from accounting.tenants.services import do_create_api_key, do_create_tenant

    def make(tenant_slug="acme", **fields):
        tenant = Tenant.objects.filter(slug=tenant_slug).first() or do_create_tenant(tenant_slug)
        key, plaintext = do_create_api_key(tenant, name="limited")
        for name, value in fields.items():
            setattr(key, name, value)
        key.save()
        return key, plaintext

    return make


def post(gateway, key, body=None, **extra):
    body = body or {"model": "gpt-4o-mini", "messages": HELLO, **extra}
    return httpx.post(f"{gateway}/v1/chat/completions", content=orjson.dumps(body),
                      headers={"Authorization": f"Bearer {key}", "content-type": "application/json"}, timeout=10)


def test_rpm_limit_headers_on_success_then_429_with_retry_after(gateway, provider, upstream, make_key, usage_events):
    _, key = make_key(rpm_limit=2)
    first = post(gateway, key)
    assert first.status_code == 200
    assert [first.headers[h] for h in RATE_HEADERS[:2]] == ["2", "1"]
    assert first.headers["x-ratelimit-reset-requests"] in ("1m0s", "60s") or first.headers[
        "x-ratelimit-reset-requests"].endswith("s")
    assert "x-ratelimit-limit-tokens" not in first.headers  # no TPM limit: nothing to show
    assert post(gateway, key).headers["x-ratelimit-remaining-requests"] == "0"
    upstream.requests.clear()
    refused = post(gateway, key)
    error = assert_envelope(refused, 429, "rate_limit_error", code="rate_limit_exceeded")
    assert "API key's requests-per-minute limit (2)" in error["message"]
    # GCRA: one request's share of the minute (60 s / 2) must come back before the next one fits
    assert 25 <= int(refused.headers["retry-after"]) <= 30
    assert 25_000 <= int(refused.headers["retry-after-ms"]) <= 30_000
    assert [refused.headers[h] for h in RATE_HEADERS[:2]] == ["2", "0"]
    assert refused.headers["x-ratelimit-reset-requests"].endswith("s") and refused.headers[
        "x-ratelimit-reset-requests"] != "0ms"
    assert refused.headers["x-request-id"]
    assert upstream.chat_requests() == []  # refused before any upstream call
    assert usage_events(refused.headers["x-request-id"], expect=0) == []  # and nothing recorded


def test_headers_on_a_stream_too(gateway, provider, make_key):
    _, key = make_key(rpm_limit=5, tpm_limit=10_000)
    with httpx.stream("POST", f"{gateway}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json={"model": "gpt-4o-mini", "messages": HELLO, "stream": True, "max_tokens": 100},
                      timeout=10) as response:
        body = response.read()
        assert response.status_code == 200 and body.endswith(b"data: [DONE]\n\n")
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-ratelimit-remaining-requests"] == "4"
        assert response.headers["x-ratelimit-limit-tokens"] == "10000"
        # prompt (~5 tokens by chars/4 plus overheads) + max_tokens reserved up front
        assert 10_000 - 120 < int(response.headers["x-ratelimit-remaining-tokens"]) <= 10_000 - 100
        assert response.headers["x-ratelimit-reset-tokens"]


def test_tenant_limit_counts_all_its_keys_and_the_message_names_it(gateway, provider, make_key):
    from accounting.models import Tenant

    _, first = make_key()
    _, second = make_key()
    tenant = Tenant.objects.get(slug="acme")
    tenant.rpm_limit = 3
    tenant.save()
    statuses = [post(gateway, k).status_code for k in (first, second, first, second)]
    assert statuses == [200, 200, 200, 429]
    error = post(gateway, first).json()["error"]
    assert error["code"] == "rate_limit_exceeded" and "tenant's requests-per-minute limit (3)" in error["message"]


def test_tpm_reservation_and_reconciliation_through_the_sdk(gateway, provider, make_key, usage_events):
    _, key = make_key(tpm_limit=100)
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key=key, max_retries=0)
    # Each request reserves ~7 prompt tokens + 20; the fake upstream reports 17 (11 + 6), which is what stays.
    ok = 0
    for _ in range(8):
        time.sleep(0.1)  # the reconciliation is sent just after the answer, off the response's path
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=20)
            ok += 1
        except openai.RateLimitError as exc:
            assert exc.status_code == 429 and exc.body["code"] == "rate_limit_exceeded"
            assert "tokens-per-minute limit (100)" in exc.body["message"]
            break
    # Without reconciliation 100 // 27 = 3 would pass; reconciled to 17 each, 4 fit and the 5th's 27 do not
    # (4 * 17 + 27 = 95 <= 100 lets a 5th in: 5 * 17 = 85, then 85 + 27 > 100).
    assert ok == 5


def test_model_outside_the_allow_list_is_403_and_never_forwarded(gateway, provider, upstream, make_key,
                                                                 usage_events):
    _, key = make_key(allowed_models=["openai/tool-model"])
    upstream.requests.clear()
    refused = post(gateway, key)
    error = assert_envelope(refused, 403, "permission_error", param="model", code="model_not_allowed")
    assert "gpt-4o-mini" in error["message"]
    assert refused.headers["x-request-id"]
    assert upstream.chat_requests() == []
    assert usage_events(refused.headers["x-request-id"], expect=0) == []
    assert post(gateway, key, {"model": "openai/tool-model", "messages": HELLO}).status_code == 200
    assert post(gateway, key, {"model": "tool-model", "messages": HELLO}).status_code == 200  # resolves there
    with pytest.raises(openai.PermissionDeniedError) as raised:
        openai.OpenAI(base_url=f"{gateway}/v1", api_key=key, max_retries=0).embeddings.create(
            model="text-embedding-3-small", input="hi")
    assert raised.value.body["code"] == "model_not_allowed"


def test_provider_wildcard_virtual_models_and_the_tenant_list(gateway, make_provider, upstream, make_key):
    from accounting.models import Tenant
    from providers.models import ModelAlias

    make_provider(name="primary", base_url=f"http://127.0.0.1:{upstream.port}/a/v1")
    make_provider(name="backup", provider_type="groq", base_url=f"http://127.0.0.1:{upstream.port}/b/v1")
    ModelAlias.objects.create(name="smart", targets=[{"target": "primary/gpt-4o-mini", "weight": 1}])
    _, wildcard = make_key(allowed_models=["backup/*"])
    assert post(gateway, wildcard, {"model": "backup/gpt-4o-mini", "messages": HELLO}).status_code == 200
    assert post(gateway, wildcard, {"model": "primary/gpt-4o-mini", "messages": HELLO}).status_code == 403
    assert post(gateway, wildcard, {"model": "smart", "messages": HELLO}).status_code == 403  # routes to primary
    _, named = make_key(allowed_models=["smart"])
    assert post(gateway, named, {"model": "smart", "messages": HELLO}).status_code == 200
    assert post(gateway, named, {"model": "primary/gpt-4o-mini", "messages": HELLO}).status_code == 403
    tenant = Tenant.objects.get(slug="acme")
    tenant.allowed_models = ["backup/tool-model"]
    tenant.save()
    # the key allows backup/*, the tenant only backup/tool-model: both must allow
    assert post(gateway, wildcard, {"model": "backup/gpt-4o-mini", "messages": HELLO}).status_code == 403
    assert post(gateway, wildcard, {"model": "backup/tool-model", "messages": HELLO}).status_code == 200


def test_models_lists_only_what_the_key_may_use(gateway, provider, make_key):
    _, key = make_key(allowed_models=["openai/gpt-4o-mini", "tool-model"])
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key=key, max_retries=0)
    assert sorted(m.id for m in client.models.list()) == ["openai/gpt-4o-mini", "openai/tool-model"]
    _, free = make_key()
    everything = [m.id for m in openai.OpenAI(base_url=f"{gateway}/v1", api_key=free).models.list()]
    assert len(everything) > 2


def test_concurrency_limit_refuses_while_a_slow_request_holds_the_slot(gateway, provider, make_key):
    import concurrent.futures
    import time

    _, key = make_key(concurrency_limit=1)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        slow = pool.submit(post, gateway, key, {"model": "slow", "messages": HELLO})
        time.sleep(0.5)  # the slow request holds the one slot (its upstream answers after 10 s)
        refused = post(gateway, key)
        error = assert_envelope(refused, 429, "rate_limit_error", code="rate_limit_exceeded")
        assert "concurrent-requests limit (1)" in error["message"]
        assert refused.headers["retry-after"] == "1"
        assert slow.result(timeout=20).status_code in (200, 504)  # the upstream's answer, or the timeout
    time.sleep(0.2)  # the slot is released just after the answer
    assert post(gateway, key).status_code == 200


def test_usage_reports_rate_limits_without_consuming(gateway, provider, make_key, settings):
    from accounting.models import Tenant

    _, key = make_key(rpm_limit=5, concurrency_limit=2)
    tenant = Tenant.objects.get(slug="acme")
    tenant.tpm_limit = 1000
    tenant.save()
    assert post(gateway, key, max_tokens=50).status_code == 200
    for _ in range(2):
        body = httpx.get(f"{gateway}/v1/usage", headers={"Authorization": f"Bearer {key}"}).json()
    limits = body["rate_limits"]
    assert limits["key"]["requests"]["limit"] == 5 and limits["key"]["requests"]["remaining"] == 4
    assert 0 < limits["key"]["requests"]["reset_seconds"] <= 60
    assert limits["key"]["concurrency"] == {"limit": 2, "remaining": 2, "reset_seconds": None}
    assert limits["key"]["tokens"] == {"limit": None, "remaining": None, "reset_seconds": None}
    assert limits["tenant"]["tokens"]["limit"] == 1000
    # reconciled to the reported 11 + 6; GCRA refills ~17 tokens a second at 1,000 a minute meanwhile
    assert 1000 - 17 <= limits["tenant"]["tokens"]["remaining"] <= 1000
    assert limits["tenant"]["requests"]["limit"] is None
    master = httpx.get(f"{gateway}/v1/usage?tenant=acme",
                       headers={"Authorization": f"Bearer {settings.GOMODEL_MASTER_KEY}"}).json()["rate_limits"]
    assert master["key"] is None
    assert 983 <= master["tenant"]["tokens"]["remaining"] <= 1000 and master["tenant"]["concurrency"]["limit"] is None


def test_the_responses_endpoint_is_limited_and_allow_listed_too(gateway, provider, upstream, make_key):
    def respond(key):
        return httpx.post(f"{gateway}/v1/responses", headers={"Authorization": f"Bearer {key}"},
                          json={"model": "gpt-4o-mini", "input": "Hi", "store": False}, timeout=10)

    _, key = make_key(rpm_limit=1, allowed_models=["openai/*"])
    ok = respond(key)
    assert ok.status_code == 200, ok.text
    assert ok.headers["x-ratelimit-remaining-requests"] == "0"
    refused = respond(key)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(refused.headers["retry-after"]) >= 1
    _, narrow = make_key(allowed_models=["openai/tool-model"])
    upstream.requests.clear()
    forbidden = respond(narrow)
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "model_not_allowed"
    assert upstream.requests == []
