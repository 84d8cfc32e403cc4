"""The live feed over a real WebSocket to the running gateway (uvicorn + Channels + the Redis channel layer):
staff only, every finished request pushed with its tenant, key, tokens, cost and latency."""

import time

import httpx
import orjson
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from accounting.prices.defaults import load_default_prices
from gomodel.dashboard import live

pytestmark = [pytest.mark.e2e]
WAIT = 10.0


def session_cookie(staff: bool, can_view_usage: bool = True) -> str:
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user(f"user-{staff}-{can_view_usage}", password=None,
                                                is_staff=staff)  # no hashing: fast
    if can_view_usage:
        user.user_permissions.add(Permission.objects.get(codename="view_usageevent"))
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def open_feed(gateway, cookie=None, query=""):
    headers = {"Origin": gateway}
    if cookie:
        headers["Cookie"] = f"sessionid={cookie}"
    return connect(gateway.replace("http://", "ws://") + "/dashboard/ws/live/" + query, additional_headers=headers,
                   open_timeout=WAIT)


def receive(ws, kind: str, timeout: float = WAIT) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        message = orjson.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        if message["type"] == kind:
            return message


def chat(gateway, key, model="gpt-4o-mini"):
    response = httpx.post(f"{gateway}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                          json={"model": model, "messages": [{"role": "user", "content": "Hi"}]}, timeout=WAIT)
    return response


def test_anonymous_and_non_staff_sockets_are_refused(gateway):
    for cookie in (None, session_cookie(staff=False)):
        with pytest.raises(InvalidStatus) as refused:
            open_feed(gateway, cookie)
        assert refused.value.response.status_code == 403


def test_staff_without_the_usage_view_permission_is_refused(gateway):
    """#19: a staff user with no Django permissions saw every tenant's requests and cost go by."""
    for cookie in (session_cookie(staff=True, can_view_usage=False),):
        with pytest.raises(InvalidStatus) as refused:
            open_feed(gateway, cookie)
        assert refused.value.response.status_code == 403


def test_a_socket_from_another_site_is_refused(gateway):
    with pytest.raises(InvalidStatus):
        connect(gateway.replace("http://", "ws://") + "/dashboard/ws/live/",
                additional_headers={"Origin": "https://evil.example", "Cookie": f"sessionid={session_cookie(True)}"},
                open_timeout=WAIT)


def test_finished_requests_are_pushed_to_staff_with_cost(gateway, provider, tenant_key, upstream):
    load_default_prices()
    _, key, plaintext = tenant_key
    with open_feed(gateway, session_cookie(staff=True)) as ws:
        assert receive(ws, "ready")["tenant"] is None
        ok = chat(gateway, plaintext)
        failed = chat(gateway, plaintext, model="fail-500")
        assert (ok.status_code, failed.status_code) == (200, 502)
        seen = {}
        deadline = time.monotonic() + WAIT
        while len(seen) < 2 and time.monotonic() < deadline:
            for item in receive(ws, "events")["events"]:
                seen[item["request_id"]] = item
    row = seen[ok.headers["x-request-id"]]
    assert (row["tenant"], row["api_key"], row["model"], row["provider"], row["status"]) == (
        "acme", key.prefix, "gpt-4o-mini", "openai", 200)
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (11, 6, 17)
    # 9 uncached × $0.15 + 2 cached × $0.075 + 6 × $0.60, per million tokens
    assert row["cost_usd"] == "0.0000051"
    assert row["latency_ms"] > 0 and row["ttft_ms"] is None
    error = seen[failed.headers["x-request-id"]]
    assert error["status"] == 502 and error["total_tokens"] == 0


def test_a_tenant_filter_narrows_the_feed(gateway, provider, tenant_key, upstream):
    from accounting.tenants.services import do_create_api_key, do_create_tenant

    _, _, acme_key = tenant_key
    _, globex_key = do_create_api_key(do_create_tenant("globex"))
    cookie = session_cookie(staff=True)
    with open_feed(gateway, cookie, "?tenant=globex") as only_globex, open_feed(gateway, cookie) as everyone:
        receive(only_globex, "ready")
        receive(everyone, "ready")
        first = chat(gateway, acme_key).headers["x-request-id"]
        second = chat(gateway, globex_key).headers["x-request-id"]
        got = receive(only_globex, "events")["events"]
        assert [e["request_id"] for e in got] == [second]
        ids = []
        while len(ids) < 2:
            ids += [e["request_id"] for e in receive(everyone, "events")["events"]]
        assert ids == [first, second]


def test_feed_item_reads_a_stream_entry():
    raw = orjson.dumps({"request_id": "r1", "ts": 1_700_000_000.5, "tenant": "acme", "api_key_prefix": "sk_gom_…abcd",
                        "provider": "openai", "provider_type": "openai", "model": "m", "status": 200,
                        "prompt_tokens": 3, "completion_tokens": 4, "latency_ms": 12.5})
    item = live.feed_item(raw, prices=None)
    assert (item["request_id"], item["tenant"], item["api_key"], item["total_tokens"], item["cost_usd"]) == (
        "r1", "acme", "sk_gom_…abcd", 7, None)
    assert live.feed_item(b"not json", None) is None and live.feed_item(None, None) is None
