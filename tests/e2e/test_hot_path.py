"""A warm /v1/chat/completions, /v1/responses (store=false) or /v1/messages request makes no thread hop
and no ORM query (ARCHITECTURE.md)."""

import concurrent.futures
import threading
import time

import httpx
import pytest
from asgiref.sync import SyncToAsync
from django.db.backends import utils as db_utils

pytestmark = [pytest.mark.e2e]


class Counter:
    def __init__(self):
        self.lock = threading.Lock()
        self.hops = 0
        self.submits = 0
        self.queries = 0

    def bump(self, field):
        with self.lock:
            setattr(self, field, getattr(self, field) + 1)


@pytest.fixture
def counter(monkeypatch):
    counter = Counter()
    original_call = SyncToAsync.__call__
    original_submit = concurrent.futures.ThreadPoolExecutor.submit
    original_execute = db_utils.CursorWrapper.execute
    original_executemany = db_utils.CursorWrapper.executemany

    async def counted_call(self, *args, **kwargs):
        counter.bump("hops")
        return await original_call(self, *args, **kwargs)

    def counted_submit(self, *args, **kwargs):
        counter.bump("submits")
        return original_submit(self, *args, **kwargs)

    def counted_execute(self, *args, **kwargs):
        counter.bump("queries")
        return original_execute(self, *args, **kwargs)

    def counted_executemany(self, *args, **kwargs):
        counter.bump("queries")
        return original_executemany(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counted_call)
    monkeypatch.setattr(concurrent.futures.ThreadPoolExecutor, "submit", counted_submit)
    monkeypatch.setattr(db_utils.CursorWrapper, "execute", counted_execute)
    monkeypatch.setattr(db_utils.CursorWrapper, "executemany", counted_executemany)
    return counter


def _post(gateway, key, path="/v1/chat/completions", **body):
    if path == "/v1/responses":
        payload = {"model": "gpt-4o-mini", "input": "Hi", "store": False, **body}
    else:
        payload = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], **body}
    if path == "/v1/messages":
        payload["max_tokens"] = 16
    with httpx.stream("POST", f"{gateway}{path}", headers={"Authorization": f"Bearer {key}"},
                      json=payload, timeout=10) as response:
        content = response.read()
        assert response.status_code == 200, content
        return response.headers


def limit_everything(tenant, key):
    """Every limit and an allow-list on, for the key and its tenant (the warm path must stay free)."""
    key.rpm_limit, key.tpm_limit, key.concurrency_limit = 1000, 1_000_000, 10
    key.allowed_models = ["openai/*", "groq/*"]
    key.save()
    tenant.rpm_limit, tenant.tpm_limit, tenant.concurrency_limit = 1000, 1_000_000, 10
    tenant.allowed_models = ["openai/gpt-4o-mini", "groq/*"]
    tenant.save()


def _assert_warm_path_is_free(gateway, key, counter, usage_events, path, limited=False, **body):
    first = _post(gateway, key, path, **body)["x-request-id"]  # cold: loads the key and the providers
    usage_events(first)
    assert counter.hops > 0 and counter.queries > 0, "the counters must see the cold path's DB reads"
    time.sleep(0.2)  # let invalidations published by this test's own setup arrive before measuring
    usage_events(_post(gateway, key, path, **body)["x-request-id"])

    counter.hops = counter.submits = counter.queries = 0
    headers = _post(gateway, key, path, **body)
    assert len(usage_events(headers["x-request-id"])) == 1
    assert (counter.hops, counter.submits, counter.queries) == (0, 0, 0)
    assert ("x-ratelimit-remaining-requests" in headers) is limited  # the limits were really checked


@pytest.mark.parametrize("limited", [False, True], ids=["unlimited", "limited"])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses", "/v1/messages"])
@pytest.mark.parametrize("stream", [False, True])
def test_warm_request_makes_zero_hops_and_zero_queries(gateway, provider, tenant_key, counter, usage_events,
                                                       stream, path, limited):
    if limited:
        limit_everything(tenant_key[0], tenant_key[1])
    _assert_warm_path_is_free(gateway, tenant_key[2], counter, usage_events, path, limited, stream=stream)


@pytest.mark.parametrize("stream", [False, True])
def test_warm_translated_responses_request_makes_zero_hops(gateway, make_provider, upstream, tenant_key, counter,
                                                            usage_events, stream):
    """/v1/responses on a provider without the Responses API: translated to chat and back, still free."""
    make_provider(name="groq", provider_type="groq", base_url=upstream.base_url)
    limit_everything(tenant_key[0], tenant_key[1])
    _assert_warm_path_is_free(gateway, tenant_key[2], counter, usage_events, "/v1/responses", True,
                              model="groq/gpt-4o-mini", stream=stream)


@pytest.mark.parametrize("stream", [False, True])
def test_warm_native_anthropic_message_makes_zero_hops(gateway, make_provider, tenant_key, counter, usage_events,
                                                       stream):
    """/v1/messages relayed natively to an Anthropic target (Claude Code's path)."""
    from tests.fake_anthropic import FakeAnthropic

    fake = FakeAnthropic().start()
    try:
        make_provider(name="anthropic", provider_type="anthropic", base_url=fake.base_url, api_key="sk-ant")
        tenant, key = tenant_key[0], tenant_key[1]
        limit_everything(tenant, key)
        key.allowed_models = tenant.allowed_models = ["anthropic/*"]
        key.save()
        tenant.save()
        _assert_warm_path_is_free(gateway, tenant_key[2], counter, usage_events, "/v1/messages", True,
                                  model="claude-opus-4-6", stream=stream)
    finally:
        fake.stop()


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_budgeted_key_stays_at_zero_hops_and_zero_queries(gateway, provider, tenant_key, counter, usage_events,
                                                            stream, path):
    """The budget check (one MGET) and the pricing of the event (prices in memory) add no hop."""
    from decimal import Decimal

    tenant, key, plaintext = tenant_key
    tenant.budget_usd, key.budget_usd, key.budget_period = Decimal("5"), Decimal("1"), "daily"
    tenant.save()
    key.save()
    time.sleep(0.2)  # the invalidation of those saves reaches the gateway
    first = _post(gateway, plaintext, path, stream=stream)["x-request-id"]  # cold: the key with its budgets, the prices
    assert usage_events(first)[0]["cost_source"] == "price_db"
    usage_events(_post(gateway, plaintext, path, stream=stream)["x-request-id"])

    counter.hops = counter.submits = counter.queries = 0
    second = _post(gateway, plaintext, path, stream=stream)["x-request-id"]
    [event] = usage_events(second)
    assert len(event["budget_keys"]) == 2 and event["cost_e10"] > 0
    assert (counter.hops, counter.submits, counter.queries) == (0, 0, 0)
