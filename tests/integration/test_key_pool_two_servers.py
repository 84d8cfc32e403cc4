"""A pool key's 429 cool-down holds across gateway processes: two uvicorn servers (subprocesses) share one Redis
and one database; the key that answered 429 to one server gets no call from the other during its cool-down."""

import collections
import time

import httpx
import pytest

from tests.integration.test_limits_two_servers import GatewayProcess

HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture
def servers(tmp_path, transactional_db, settings, monkeypatch):
    monkeypatch.setenv("KEY_COOLDOWN_PREFIX", settings.KEY_COOLDOWN_PREFIX)  # this test's, in both processes
    started = [GatewayProcess(tmp_path, "a"), GatewayProcess(tmp_path, "b")]
    try:
        for server in started:
            server.wait_ready()
        yield [server.url for server in started]
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def pooled_key(make_provider, upstream, tenant_key):
    from accounting.provider_configs.services import do_add_provider_key

    config = make_provider(base_url=upstream.base_url, api_key="sk-pool-one")
    do_add_provider_key("tester", config, "sk-pool-two")
    do_add_provider_key("tester", config, "sk-pool-three")
    return tenant_key[2]


def chat(url, key):
    response = httpx.post(f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                          json={"model": "gpt-4o-mini", "messages": HELLO}, timeout=20)
    assert response.status_code == 200, response.text
    return response


def test_a_429_on_one_server_cools_the_key_on_the_other(servers, pooled_key, upstream, redis_sync, settings):
    first, second = servers
    for url in servers:  # warm both: key cache, registry and pools
        for _ in range(3):
            chat(url, pooled_key)
    assert set(upstream.keys_used()) == {"sk-pool-one", "sk-pool-two", "sk-pool-three"}
    upstream.requests.clear()
    upstream.key_answers["sk-pool-two"] = (429, b"30")
    for _ in range(3):  # round-robin: one of these reaches key-2, which answers 429; the call goes on at once
        chat(first, pooled_key)
    assert upstream.keys_used().count("sk-pool-two") == 1
    assert len(list(redis_sync.scan_iter(match=settings.KEY_COOLDOWN_PREFIX + ":*"))) == 1
    time.sleep(0.3)  # the message on the invalidation channel reaches the other process
    for _ in range(30):
        chat(second, pooled_key)
    counts = collections.Counter(upstream.keys_used())
    assert counts["sk-pool-two"] == 1, counts  # none from the second server during the cool-down
    assert counts["sk-pool-one"] + counts["sk-pool-three"] == 33  # every call answered by the others
