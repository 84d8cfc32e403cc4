"""Budgets end to end: a spent budget is a 429 with the period's Retry-After, a stream is cut where
the budget runs out and billed for what the client got, a new period restores access, a Redis restart
or flush neither loses spend nor counts it twice, and the soft-limit webhook fires once, signed."""

import hashlib
import hmac
import http.server
import math
import threading
from datetime import datetime, timezone
from decimal import Decimal

import httpx
import orjson
import pytest

from accounting.budgets import counters
from accounting.budgets import tasks as budgets
from accounting.models import ModelPrice, UsageEvent
from accounting.usage.drain import drain

pytestmark = [pytest.mark.e2e]

# gpt-4o-mini in genai-prices: $0.15 / M input, $0.075 / M cached input, $0.60 / M output. The fake
# upstream answers a chat with 11 prompt tokens (2 of them cached) and 6 completion tokens:
ONE_CHAT = (9 * Decimal("0.15") + 2 * Decimal("0.075") + 6 * Decimal("0.60")) / 1_000_000  # 0.0000051


def chat(gateway, key, stream=False, model="gpt-4o-mini"):
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "stream": stream}
    response = httpx.post(f"{gateway}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, json=body,
                          timeout=10)
    return response


def assert_budget_exceeded(response, retry_after):
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("rate_limit_error", "budget_exceeded", None)
    assert response.headers.get("retry-after") == retry_after


def set_budget(row, usd, period="daily", soft=None):
    row.budget_usd, row.budget_period, row.budget_soft_percent = Decimal(usd), period, soft
    row.save()


@pytest.fixture
def at(monkeypatch):
    """The budgets' clock, moved by the test."""
    now = {"t": datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)}  # a Wednesday
    monkeypatch.setattr(counters, "clock", lambda: now["t"])

    def move(when: datetime):
        now["t"] = when

    return move


def budget_of_usage(gateway, key):
    response = httpx.get(f"{gateway}/v1/usage", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["budget"]


@pytest.mark.parametrize("scope, period, retry_after", [
    ("key", "daily", "43200"),  # Wednesday 12:00 → Thursday 00:00
    ("tenant", "weekly", "388800"),  # → Monday 00:00: 4 days 12 hours
    ("key", "monthly", "475200"),  # → December 1st: 5 days 12 hours
    ("tenant", "total", None),  # never resets: no Retry-After
])
def test_a_spent_budget_is_a_429_with_the_periods_retry_after(gateway, provider, upstream, tenant_key, usage_events,
                                                              at, scope, period, retry_after):
    tenant, key, secret = tenant_key
    set_budget(tenant if scope == "tenant" else key, "0.000005", period)  # less than one chat
    first = chat(gateway, secret)
    assert first.status_code == 200, first.text
    usage_events(first.headers["x-request-id"])
    before = len(upstream.chat_requests())
    refused = chat(gateway, secret)
    assert_budget_exceeded(refused, retry_after)
    assert len(upstream.chat_requests()) == before  # never forwarded
    assert len(usage_events(None)) == 1  # and not recorded
    status = budget_of_usage(gateway, secret)[scope]
    assert status["spent_usd"] == str(ONE_CHAT) and status["limit_usd"] == "0.000005"
    assert (status["remaining_usd"], status["period"], status["exceeded"]) == ("0", period, True)


def test_the_budget_and_cost_show_in_the_event_and_usage(gateway, provider, tenant_key, usage_events, at):
    tenant, key, secret = tenant_key
    set_budget(key, "1", "monthly")
    response = chat(gateway, secret)
    [event] = usage_events(response.headers["x-request-id"])
    assert (event["cost"], event["cost_source"]) == (str(ONE_CHAT), "price_db")
    assert event["cost_e10"] == int(ONE_CHAT * 10**10)
    status = budget_of_usage(gateway, secret)
    assert status["tenant"] is None
    assert status["key"]["spent_usd"] == str(ONE_CHAT)
    assert status["key"]["remaining_usd"] == str(1 - ONE_CHAT)
    assert status["key"]["period_end"] == "2026-12-01T00:00:00+00:00"
    assert drain().inserted == 1
    stored = UsageEvent.objects.get()
    assert (stored.cost, stored.cost_source) == (ONE_CHAT, "price_db")
    assert budget_of_usage(gateway, secret)["key"]["spent_usd"] == str(ONE_CHAT)  # moved to the base, once


def test_a_new_period_restores_access(gateway, provider, tenant_key, usage_events, at):
    tenant, key, secret = tenant_key
    set_budget(tenant, "0.000005", "daily")
    at(datetime(2026, 11, 25, 23, 59, 50, tzinfo=timezone.utc))
    usage_events(chat(gateway, secret).headers["x-request-id"])
    assert_budget_exceeded(chat(gateway, secret), "10")
    at(datetime(2026, 11, 26, 0, 0, 1, tzinfo=timezone.utc))
    assert chat(gateway, secret).status_code == 200
    assert budget_of_usage(gateway, secret)["tenant"]["period_start"] == "2026-11-26"


def test_a_request_with_no_known_price_is_allowed(gateway, provider, tenant_key, usage_events, at):
    tenant, key, secret = tenant_key
    set_budget(key, "0.000001", "daily")
    for _ in range(2):  # "tool-model" is in no price list: allowed, logged, not counted
        response = chat(gateway, secret, model="tool-model")
        assert response.status_code == 200
        [event] = usage_events(response.headers["x-request-id"])
        assert (event["cost_source"], event["cost"], event["budget_keys"]) == ("unknown", None, [])
    assert budget_of_usage(gateway, secret)["key"]["spent_usd"] == "0"


def test_a_budget_cuts_a_long_stream_and_bills_what_the_client_got(gateway, provider, tenant_key, usage_events,
                                                                    at):
    tenant, key, secret = tenant_key
    # "long-stream" relays 300 pieces (~1,450 characters) over ~3 s; an admin price makes it cost
    # $10 / M output tokens, $1 / M input tokens: the whole answer would be ~$0.0036.
    ModelPrice.objects.create(provider="openai", model_pattern="long-stream", input_per_million=Decimal("1"),
                              output_per_million=Decimal("10"), valid_from=datetime(2020, 1, 1, tzinfo=timezone.utc))
    set_budget(key, "0.001", "daily")
    received, error = [], None
    with httpx.stream("POST", f"{gateway}/v1/chat/completions", headers={"Authorization": f"Bearer {secret}"},
                      json={"model": "long-stream", "stream": True,
                            "messages": [{"role": "user", "content": "Hi"}]}, timeout=10) as response:
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            assert line != "data: [DONE]", "a cut stream must not end as if complete"
            payload = orjson.loads(line[6:])
            if "error" in payload:
                error = payload["error"]
                continue
            for choice in payload["choices"]:
                received.append(choice["delta"].get("content") or "")
    assert error == {"type": "rate_limit_error", "code": "budget_exceeded", "param": None,
                     "message": error["message"]}
    text = "".join(received)
    assert 0 < len(text) < len("Hello from the fake upstream!") * 50  # cut mid-way
    [event] = usage_events(request_id)
    completion = math.ceil(len(text) / 4)  # the estimate for a non-OpenAI model: 4 characters a token
    prompt = 3 + 4 + 1  # priming, one message's overhead, "Hi"
    assert (event["prompt_tokens"], event["completion_tokens"]) == (prompt, completion)
    assert (event["usage_source"], event["status"], event["cost_source"]) == ("estimated", 429, "admin")
    cost = (prompt * Decimal(1) + completion * Decimal(10)) / 1_000_000
    assert Decimal(event["cost"]) == cost
    # Cut where the running estimate crossed the budget: within one relayed piece of it.
    assert Decimal("0.001") <= cost <= Decimal("0.001") + 10 * Decimal(10) / 1_000_000
    assert_budget_exceeded(chat(gateway, secret), "43200")


def test_a_budget_cuts_a_responses_stream_with_response_failed(gateway, make_provider, upstream, tenant_key,
                                                               usage_events, at):
    """/v1/responses (translated to chat on a provider without the Responses API): the same running cost,
    and the stream ends in the protocol's own terminal event, response.failed, never response.completed."""
    tenant, key, secret = tenant_key
    make_provider(name="groq", provider_type="groq", base_url=upstream.base_url)
    ModelPrice.objects.create(provider="groq", model_pattern="long-stream", input_per_million=Decimal("1"),
                              output_per_million=Decimal("10"), valid_from=datetime(2020, 1, 1, tzinfo=timezone.utc))
    set_budget(key, "0.001", "daily")
    text, kinds, failed = [], [], None
    with httpx.stream("POST", f"{gateway}/v1/responses", headers={"Authorization": f"Bearer {secret}"},
                      json={"model": "groq/long-stream", "stream": True, "input": "Hi", "store": False},
                      timeout=10) as response:
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        for line in response.iter_lines():
            if line.startswith("data: {"):
                event = orjson.loads(line[6:])
                kinds.append(event["type"])
                if event["type"] == "response.output_text.delta":
                    text.append(event["delta"])
                elif event["type"] == "response.failed":
                    failed = event["response"]
    assert kinds[-1] == "response.failed" and "response.completed" not in kinds
    assert failed["status"] == "failed" and failed["error"]["code"] == "budget_exceeded"
    received = "".join(text)
    assert 0 < len(received) < len("Hello from the fake upstream!") * 50  # cut mid-way
    [event] = usage_events(request_id)
    assert (event["endpoint"], event["status"], event["usage_source"]) == ("/v1/responses", 429, "estimated")
    assert event["completion_tokens"] == math.ceil(len(received) / 4)  # what the client got, 4 characters a token
    cost = Decimal(event["cost"])
    assert Decimal("0.001") <= cost <= Decimal("0.001") + 10 * Decimal(10) / 1_000_000
    assert upstream.chat_requests()[-1]["body"]["model"] == "long-stream"


def test_a_redis_restart_or_flush_neither_loses_spend_nor_counts_it_twice(private_gateway, private_redis, provider,
                                                                           tenant_key, at):
    tenant, key, secret = tenant_key
    set_budget(key, "0.00001", "daily")  # two chats (2 × 0.0000051) spend it
    client = private_redis.client()
    assert chat(private_gateway, secret).status_code == 200
    _wait_stream(client, 1)
    assert drain(client).inserted == 1  # one chat drained into the database ...
    assert chat(private_gateway, secret).status_code == 200  # ... and one still in the stream at the restart
    _wait_stream(client, 1)
    private_redis.stop()
    private_redis.start()
    client = private_redis.client()
    assert_budget_exceeded(chat(private_gateway, secret), "43200")
    assert budget_of_usage(private_gateway, secret)["key"]["spent_usd"] == str(2 * ONE_CHAT)
    assert drain(client).inserted == 1
    assert budget_of_usage(private_gateway, secret)["key"]["spent_usd"] == str(2 * ONE_CHAT)
    assert budgets.reconcile(client) == 1  # idempotent: sets, never adds
    assert budgets.reconcile(client) == 1
    assert budget_of_usage(private_gateway, secret)["key"]["spent_usd"] == str(2 * ONE_CHAT)
    client.flushall()  # everything in Redis gone; the database still has both chats
    assert budgets.reconcile(client) == 1
    assert budget_of_usage(private_gateway, secret)["key"]["spent_usd"] == str(2 * ONE_CHAT)
    assert_budget_exceeded(chat(private_gateway, secret), "43200")


def _wait_stream(client, n):
    from django.conf import settings

    from tests.accounting.conftest import wait_until

    wait_until(lambda: client.xlen(settings.USAGE_STREAM) >= n, 5, message=f"{n} events in the stream")


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: list = []
    failures = 0  # answer this many POSTs with a 503 first

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["content-length"]))
        if _Receiver.failures > 0:
            _Receiver.failures -= 1
            self.send_response(503)
            self.end_headers()
            return
        self.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver(settings):
    from gomodel.celery import app

    _Receiver.received, _Receiver.failures = [], 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.BUDGET_WEBHOOK_URL = f"http://127.0.0.1:{server.server_address[1]}/hook"
    settings.BUDGET_WEBHOOK_SECRET = "whsec-test"
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True  # the task runs where .delay() is called: in the drain, not a request
    yield _Receiver.received
    app.conf.task_always_eager = eager
    server.shutdown()


def test_the_soft_limit_webhook_fires_once_per_period_signed(gateway, provider, tenant_key, usage_events, receiver,
                                                             at):
    tenant, key, secret = tenant_key
    set_budget(tenant, "0.00002", "monthly", soft=40)  # two chats (0.0000102) cross 40 % (0.000008)
    _Receiver.failures = 2  # the receiver fails twice: Celery retries the task
    for _ in range(2):
        usage_events(chat(gateway, secret).headers["x-request-id"])
        drain()
    assert len(receiver) == 1 and _Receiver.failures == 0  # delivered on the third try
    for _ in range(2):  # more spend, more drains and reconciliations: no second webhook this period
        usage_events(chat(gateway, secret).headers["x-request-id"])
        drain()
        budgets.reconcile(budgets_client())
    assert len(receiver) == 1
    headers, body = receiver[0]
    expected = hmac.new(b"whsec-test", body, hashlib.sha256).hexdigest()
    assert headers["x-gomodel-signature"] == f"sha256={expected}"
    payload = orjson.loads(body)
    assert payload == {"event": "budget.soft_limit", "scope": "tenant", "tenant": "acme", "api_key_prefix": None,
                       "period": "monthly", "period_start": "2026-11-01", "period_end": "2026-12-01T00:00:00+00:00",
                       "limit_usd": "0.00002", "spent_usd": str(2 * ONE_CHAT), "soft_limit_percent": 40}


def budgets_client():
    from accounting.usage.stream import redis_client

    return redis_client()


def test_the_admin_shows_spend_beside_budgets_and_marks_the_soft_limit(gateway, provider, tenant_key, usage_events,
                                                                       admin_client):
    tenant, key, secret = tenant_key
    set_budget(tenant, "0.00001", "monthly", soft=40)
    set_budget(key, "1", "daily")
    usage_events(chat(gateway, secret).headers["x-request-id"])
    tenants = admin_client.get("/admin/accounting/tenant/").content.decode()
    assert f"soft limit (40 %) reached: ${ONE_CHAT} of $0.00001 monthly (51%)" in tenants
    page = admin_client.get(f"/admin/accounting/apikey/{key.pk}/change/").content.decode()
    assert f"${ONE_CHAT} of $1 daily (0%)" in page and 'name="budget_usd"' in page
    usage_events(chat(gateway, secret).headers["x-request-id"], expect=2)
    tenants = admin_client.get("/admin/accounting/tenant/").content.decode()
    assert f"over budget: ${2 * ONE_CHAT} of $0.00001 monthly (102%)" in tenants
    assert 'name="budget_period"' in admin_client.get(f"/admin/accounting/tenant/{tenant.pk}/change/").content.decode()


def test_a_budget_set_after_spending_counts_what_was_spent_at_once(gateway, provider, tenant_key, usage_events, at):
    tenant, key, secret = tenant_key
    usage_events(chat(gateway, secret).headers["x-request-id"])  # no budget yet
    assert drain().inserted == 1
    set_budget(tenant, "0.000005", "monthly")  # less than what the tenant already spent this month
    assert_budget_exceeded(chat(gateway, secret), "475200")


def test_through_the_openai_sdk(gateway, provider, tenant_key, usage_events, at):
    """What an OpenAI SDK user sees: a stream that raises mid-way, then a RateLimitError with the code."""
    import openai

    tenant, key, secret = tenant_key
    ModelPrice.objects.create(provider="openai", model_pattern="long-stream", input_per_million=Decimal("1"),
                              output_per_million=Decimal("10"), valid_from=datetime(2020, 1, 1, tzinfo=timezone.utc))
    set_budget(key, "0.0005", "daily")
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key=secret, max_retries=0)
    text = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in client.chat.completions.create(model="long-stream", stream=True,
                                                    messages=[{"role": "user", "content": "Hi"}]):
            text.extend(choice.delta.content or "" for choice in chunk.choices)
    assert "budget ran out" in raised.value.message and text
    usage_events(None)
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    assert refused.value.code == "budget_exceeded" and refused.value.type == "rate_limit_error"
    assert refused.value.response.headers["retry-after"] == "43200"


def test_a_prompt_that_alone_costs_more_than_is_left_is_refused_before_the_upstream(gateway, provider, upstream,
                                                                                     tenant_key, usage_events, at):
    tenant, key, secret = tenant_key
    set_budget(key, "0.0001", "daily")
    # gpt-4o-mini input: $0.15 / M tokens; 4,000,000 characters ≈ 1,000,000 tokens ≈ $0.15 > $0.0001
    before = len(upstream.chat_requests())
    for stream in (False, True):
        response = httpx.post(f"{gateway}/v1/chat/completions", headers={"Authorization": f"Bearer {secret}"},
                              json={"model": "gpt-4o-mini", "stream": stream,
                                    "messages": [{"role": "user", "content": "x" * 4_000_000}]}, timeout=30)
        assert_budget_exceeded(response, "43200")
        assert "prompt alone" in response.json()["error"]["message"]
    assert len(upstream.chat_requests()) == before and usage_events(None) == []
    assert chat(gateway, secret).status_code == 200  # a small prompt still fits


def test_an_empty_period_costs_0_and_unknown_prices_stay_null(gateway, provider, tenant_key, usage_events):
    tenant, key, secret = tenant_key

    def totals():
        response = httpx.get(f"{gateway}/v1/usage", headers={"Authorization": f"Bearer {secret}"}, timeout=10)
        assert response.status_code == 200
        return response.json()["totals"]

    assert (totals()["requests"], totals()["cost_usd"]) == (0, "0")
    usage_events(chat(gateway, secret, model="tool-model").headers["x-request-id"])  # no known price
    assert (totals()["requests"], totals()["cost_usd"]) == (1, None)
    usage_events(chat(gateway, secret).headers["x-request-id"], expect=1)
    assert (totals()["requests"], totals()["cost_usd"]) == (2, str(ONE_CHAT))


def _long_stream(gateway, secret, max_tokens=None):
    """(request id, text received, the error event or None) of one long stream."""
    text, error = [], None
    body = {"model": "long-stream", "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    with httpx.stream("POST", f"{gateway}/v1/chat/completions", headers={"Authorization": f"Bearer {secret}"},
                      json=body, timeout=20) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: {"):
                payload = orjson.loads(line[6:])
                if "error" in payload:
                    error = payload["error"]
                else:
                    text.extend(c["delta"].get("content") or "" for c in payload["choices"])
        return response.headers["x-request-id"], "".join(text), error


def test_concurrent_streams_are_cut_when_together_they_cross_the_budget(gateway, provider, tenant_key,
                                                                         usage_events, at):
    import concurrent.futures

    tenant, key, secret = tenant_key
    ModelPrice.objects.create(provider="openai", model_pattern="long-stream", input_per_million=Decimal("1"),
                              output_per_million=Decimal("10"), valid_from=datetime(2020, 1, 1, tzinfo=timezone.utc))
    # One whole answer costs ~$0.0036 (8 prompt tokens × $1 + 363 completion tokens × $10, per M): one fits
    # in $0.006, three at once (~$0.011) do not. Each asks for max_tokens=150 (reserved at admission: ~$0.0015,
    # so all three are admitted) and the upstream ignores it: their guards must cut them.
    set_budget(key, "0.006", "daily")
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: _long_stream(gateway, secret, 150), range(3)))
    assert any(error and error["code"] == "budget_exceeded" for _, _, error in results)
    events = [usage_events(request_id)[0] for request_id, _, _ in results]
    for (_, text, error), event in zip(results, events):
        # each is billed for what its client got: the exact estimate when cut, the reported usage otherwise
        expected = math.ceil(len(text) / 4) if error else 300
        assert event["completion_tokens"] == expected
    total = sum(Decimal(event["cost"]) for event in events)
    # Each stream shares its running estimate every 0.1 s (~10 pieces, ~12 tokens, $0.00012): together they
    # stop within a few of those past the budget (slack for a busy machine), far below the $0.011 of three
    # whole answers that streams each measuring alone would run to.
    assert Decimal("0.006") <= total <= Decimal("0.0075"), total


def test_spend_made_while_the_budget_check_could_not_run_reaches_the_budget_at_the_next_drain(
        gateway, provider, tenant_key, usage_events, at):
    tenant, key, secret = tenant_key
    usage_events(chat(gateway, secret).headers["x-request-id"])  # no budget yet: the event names no counter
    set_budget(tenant, "0.000005", "daily")  # its base is read at once: the event is not in the database yet
    assert budget_of_usage(gateway, secret)["tenant"]["spent_usd"] == "0"
    assert drain().inserted == 1  # the drain sets the tenant's base from it all the same
    assert budget_of_usage(gateway, secret)["tenant"]["spent_usd"] == str(ONE_CHAT)
    assert_budget_exceeded(chat(gateway, secret), "43200")


def test_embeddings_count_against_the_budget_too(gateway, provider, tenant_key, usage_events, at):
    tenant, key, secret = tenant_key
    set_budget(key, "0.0000001", "daily")  # text-embedding-3-small: $0.02 / M tokens; 2 inputs → 6 tokens
    headers = {"Authorization": f"Bearer {secret}"}
    body = {"model": "text-embedding-3-small", "input": ["a", "b"]}
    response = httpx.post(f"{gateway}/v1/embeddings", headers=headers, json=body, timeout=10)
    assert response.status_code == 200
    [event] = usage_events(response.headers["x-request-id"])
    assert (Decimal(event["cost"]), event["cost_source"]) == (6 * Decimal("0.02") / 1_000_000, "price_db")
    assert_budget_exceeded(chat(gateway, secret), "43200")  # $0.00000012 of $0.0000001 spent
    assert_budget_exceeded(httpx.post(f"{gateway}/v1/embeddings", headers=headers, json=body, timeout=10), "43200")
