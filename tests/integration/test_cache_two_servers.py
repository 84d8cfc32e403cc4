"""Coalescing across replicas: two uvicorn servers (subprocesses) sharing Redis and the database; 50 identical
concurrent requests spread over both make exactly one upstream call, and a leader that fails leaves each
follower to go upstream itself."""

import concurrent.futures
import threading

import httpx
import pytest
from django.conf import settings

from tests.integration import test_limits_two_servers as two

HELLO = [{"role": "user", "content": "Hello from two replicas"}]


@pytest.fixture
def servers(tmp_path, transactional_db, monkeypatch):
    monkeypatch.setenv("RESPONSE_CACHE_PREFIX", settings.RESPONSE_CACHE_PREFIX)  # this test's own cache
    monkeypatch.setenv("RETRY_MAX", "0")
    monkeypatch.setenv("RESPONSE_CACHE_TIMEOUT", "5")  # a shared, busy 2-core test machine (as the limits' test)
    yield from two.servers.__wrapped__(tmp_path, transactional_db)


@pytest.fixture
def cached_key(provider, transactional_db):
    from accounting.tenants.services import do_create_api_key, do_create_tenant

    tenant = do_create_tenant("acme", cache_mode="exact")
    return do_create_api_key(tenant, name="cached")[1]


def together(n, one):
    barrier = threading.Barrier(n)

    def go(i):
        barrier.wait()
        return one(i)

    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        return list(pool.map(go, range(n)))


def chat(url, key, model):
    return httpx.post(f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=30,
                      json={"model": model, "messages": HELLO})


def warm(servers, key):
    for url in servers:  # key cache and providers loaded on both
        assert httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code == 200


def test_fifty_identical_requests_over_two_servers_make_one_upstream_call(servers, cached_key, upstream):
    warm(servers, cached_key)
    upstream.requests.clear()
    answers = together(50, lambda i: chat(servers[i % 2], cached_key, "openai/delay-gpt-4o-mini"))
    assert [a.status_code for a in answers] == [200] * 50
    assert len(upstream.chat_requests()) == 1
    labels = sorted(a.headers["x-gomodel-cache"] for a in answers)
    assert labels == ["hit-exact"] * 49 + ["miss"]
    assert len({a.json()["choices"][0]["message"]["content"] for a in answers}) == 1


def test_a_failing_leader_on_one_server_leaves_the_others_to_go_upstream(servers, cached_key, upstream):
    warm(servers, cached_key)
    upstream.requests.clear()
    upstream.flaky_failures = 1
    answers = together(10, lambda i: chat(servers[i % 2], cached_key, "openai/delay-flaky"))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 9 + [502], statuses
    assert 2 <= len(upstream.chat_requests()) <= 10
