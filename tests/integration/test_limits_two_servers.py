"""Rate limits are exact across gateway processes: two uvicorn servers (subprocesses, two ports) share
one Redis and one database, and a fake upstream in this process counts what reaches it."""

import concurrent.futures
import os
import subprocess
import sys
import time

import httpx
import orjson
import pytest
from django.conf import settings

from tests.accounting.conftest import ROOT, database_url, free_port, wait_until

HELLO = [{"role": "user", "content": "Hello"}]
SLOT_TTL = 4.0  # seconds; the streams below last about as long or longer: the slots' heartbeat keeps them


class GatewayProcess:
    def __init__(self, tmp_path, name, extra_args=()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / f"gateway-{name}.log"
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "gomodel.settings", "DATABASE_URL": database_url(),
               "REDIS_URL": settings.REDIS_URL, "USAGE_STREAM": settings.USAGE_STREAM,
               "USAGE_SPOOL_PATH": str(tmp_path / f"spool-{name}.jsonl"), "LIMITS_PREFIX": settings.LIMITS_PREFIX,
               "LIMITS_SLOT_TTL": str(SLOT_TTL), "LIMITS_REDIS_TIMEOUT": "5",  # a shared, busy 2-core test machine
               "INVALIDATION_CHANNEL": settings.INVALIDATION_CHANNEL,
               "PYTHONPATH": str(ROOT)}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "gomodel.asgi:application", "--host", "127.0.0.1", "--port",
             str(self.port), "--lifespan", "on", "--log-level", "warning", *extra_args],
            cwd=ROOT, env=env, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)

    def wait_ready(self):
        def up():
            if self.process.poll() is not None:
                raise AssertionError(f"gateway exited:\n{self.log.read_text()[-3000:]}")
            try:
                return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 30, interval=0.1, message=f"gateway on {self.port}")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def servers(tmp_path, transactional_db):
    started = [GatewayProcess(tmp_path, "a"), GatewayProcess(tmp_path, "b")]
    try:
        for server in started:
            server.wait_ready()
        yield [server.url for server in started]
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def limited_key(provider, transactional_db):
    from accounting.tenants.services import do_create_api_key, do_create_tenant

    tenant = do_create_tenant("acme")

    def make(**limits):
        key, plaintext = do_create_api_key(tenant, name="limited")
        for name, value in limits.items():
            setattr(key, name, value)
        key.save()
        return plaintext

    return make


def chat(url, key, timeout=20, **body):
    return httpx.post(f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json={"model": "gpt-4o-mini", "messages": HELLO, **body}, timeout=timeout)


def assert_limited(response, limit_text):
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("rate_limit_error", "rate_limit_exceeded", None)
    assert limit_text in error["message"]
    assert int(response.headers["retry-after"]) >= 1 and int(response.headers["retry-after-ms"]) >= 1
    assert response.headers["x-request-id"].startswith("req_")


def rate_limits(url, key) -> dict:
    response = httpx.get(f"{url}/v1/usage", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["rate_limits"]


def test_ten_rpm_gives_exactly_ten_successes_across_two_servers(servers, limited_key, upstream):
    key = limited_key(rpm_limit=10)
    for url in servers:  # warm both (key cache, providers) with requests the limit does not see
        assert httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    upstream.requests.clear()
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(lambda i: chat(servers[i % 2], key), range(50)))
    # GCRA: a burst of 10, then one more every 6 s; on a loaded machine the 50 calls may outlast 6 s
    refilled = int((time.monotonic() - started) // 6)
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert 10 <= len(ok) <= 10 + refilled and len(ok) + len(refused) == 50, sorted(r.status_code for r in responses)
    if refilled:
        return  # the exact counts below hold for a burst that fits in one refill interval
    for response in refused:
        assert_limited(response, "API key's requests-per-minute limit (10)")
        assert 1 <= int(response.headers["retry-after"]) <= 60
        assert response.headers["x-ratelimit-limit-requests"] == "10"
        assert response.headers["x-ratelimit-remaining-requests"] == "0"
        assert response.headers["x-ratelimit-reset-requests"].endswith("s")
    assert sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in ok) == list(range(10))
    assert len(upstream.chat_requests()) == 10  # the refused never reached the upstream
    for url in servers:  # both see the same count, and reading it consumes nothing
        assert rate_limits(url, key)["key"]["requests"]["remaining"] == 0
    assert_limited(chat(servers[0], key), "requests-per-minute")


def test_tpm_limit_holds_and_reconciles_across_two_servers(servers, limited_key, upstream):
    key = limited_key(tpm_limit=100)
    statuses = []
    started = time.monotonic()
    for i in range(8):
        # ~7 prompt tokens (chars/4 + overheads) + max_tokens 20 reserved; the upstream reports 17 (11 + 6)
        response = chat(servers[i % 2], key, max_tokens=20)
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert_limited(response, "API key's tokens-per-minute limit (100)")
            assert response.headers["x-ratelimit-limit-tokens"] == "100"
            # GCRA refills 100 tokens a minute: what came back since the first call, on top of the 15 left
            refill = (time.monotonic() - started) * 100 / 60
            assert 15 <= int(response.headers["x-ratelimit-remaining-tokens"]) <= 15 + refill + 1
            assert 15 + refill < 27  # and still less than the next call's reservation: a 429
            break
        time.sleep(0.2)  # the reconciliation follows the answer, off its path
    # reserved and never reconciled, 27 each: 3 would pass; reconciled to 17 each: 5 (85), then 85 + 27 > 100
    assert statuses == [200] * 5 + [429]
    assert len(upstream.chat_requests()) == 5
    for url in servers:
        tokens = rate_limits(url, key)["key"]["tokens"]
        assert tokens["limit"] == 100
        assert 15 <= tokens["remaining"] <= 15 + (time.monotonic() - started) * 100 / 60 + 1


def _stream(url, key, model="long-stream", hang_up=False, spans=None):
    """(status, whether it ended with [DONE]); a hang-up closes the connection after the first chunk.
    `spans` collects (first byte, last byte) times of the streams that ran."""
    with httpx.Client(timeout=30) as client:
        with client.stream("POST", f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                           json={"model": model, "messages": HELLO, "stream": True}) as response:
            if response.status_code != 200:
                response.read()
                return response.status_code, response
            started = time.monotonic()
            if hang_up:
                next(response.iter_bytes())
                return 200, None
            done = response.read().endswith(b"data: [DONE]\n\n")
            if spans is not None:
                spans.append((started, time.monotonic()))
            return 200, done


def most_at_once(spans) -> int:
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_concurrency_of_three_holds_under_fifty_streams_and_every_slot_comes_back(servers, limited_key,
                                                                                  upstream):
    key = limited_key(concurrency_limit=3)
    for url in servers:
        assert httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    spans = []
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        results = list(pool.map(lambda i: _stream(servers[i % 2], key, spans=spans), range(50)))
    # A long stream lasts ~3 s, longer than the slots' TTL (the heartbeat keeps them): never more than three
    # at once, and three did run at once. (On a busy machine the 50 arrivals may outlast one stream, so a
    # second wave may get in after the first: the count of successes is not fixed, the overlap is.)
    assert most_at_once(spans) == 3, spans
    assert all(done for status, done in results if status == 200)
    for status, response in results:
        if status != 200:
            assert_limited(response, "API key's concurrent-requests limit (3)")
            assert response.headers["retry-after"] == "1"
    wait_until(lambda: rate_limits(servers[0], key)["key"]["concurrency"]["remaining"] == 3, 5,
               message="every slot released after the streams ended")

    # Client hang-ups mid-stream, upstream failures (a broken stream, a 500) on both servers.
    for url in servers:
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            outcomes = list(pool.map(lambda m, url=url: _stream(url, key, *m), [
                ("long-stream", True), ("break-stream", False), ("fail-500", False)]))
        assert [status for status, _ in outcomes] == [200, 200, 502]
        assert outcomes[1][1] is False  # the broken stream ended with an error event, not [DONE]
    wait_until(lambda: all(rate_limits(url, key)["key"]["concurrency"]["remaining"] == 3 for url in servers), 5,
               message="every slot released after hang-ups and failures")
    with concurrent.futures.ThreadPoolExecutor(3) as pool:  # and all three can be used again
        again = list(pool.map(lambda i: _stream(servers[i % 2], key, "gpt-4o-mini"), range(3)))
    assert [status for status, _ in again] == [200, 200, 200]


def test_a_killed_server_s_slots_expire(servers, limited_key, tmp_path):
    """A process that dies mid-request never settles: its slot expires after LIMITS_SLOT_TTL."""
    key = limited_key(concurrency_limit=1)
    doomed = GatewayProcess(tmp_path, "doomed")
    doomed.wait_ready()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        holding = pool.submit(_stream, doomed.url, key)
        wait_until(lambda: rate_limits(servers[0], key)["key"]["concurrency"]["remaining"] == 0, 10,
                   message="the doomed server holds the slot")
        doomed.process.kill()
        doomed.process.wait(timeout=10)
        with pytest.raises(httpx.HTTPError):
            holding.result(timeout=10)
    assert_limited(_stream(servers[1], key)[1], "concurrent-requests limit (1)")
    wait_until(lambda: rate_limits(servers[0], key)["key"]["concurrency"]["remaining"] == 1, SLOT_TTL + 3,
               message="the dead process's slot expired")
    assert _stream(servers[1], key, "gpt-4o-mini")[0] == 200


def test_a_server_shutting_down_frees_the_slots_of_the_requests_it_cancels(servers, limited_key, tmp_path):
    """SIGTERM: uvicorn waits --timeout-graceful-shutdown for in-flight requests, then cancels them; the
    cancelled request's `finally` frees its slot, sent before the process exits (well before the TTL)."""
    key = limited_key(concurrency_limit=1)
    stopping = GatewayProcess(tmp_path, "stopping", ["--timeout-graceful-shutdown", "1"])
    stopping.wait_ready()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        holding = pool.submit(_stream, stopping.url, key, "long-stream", False)
        wait_until(lambda: rate_limits(servers[0], key)["key"]["concurrency"]["remaining"] == 0, 10,
                   message="the stopping server holds the slot")
        stopping.process.terminate()
        stopping.process.wait(timeout=15)
        exited = time.monotonic()
        try:
            assert holding.result(timeout=10) == (200, False)  # cut by the shutdown, not finished
        except httpx.HTTPError:
            pass  # or the connection was dropped mid-chunk
    assert rate_limits(servers[0], key)["key"]["concurrency"]["remaining"] == 1
    assert time.monotonic() - exited < SLOT_TTL  # freed by the gateway, not by the slot's expiry
    assert _stream(servers[1], key, "gpt-4o-mini")[0] == 200


def test_a_key_outside_its_allow_list_is_refused_by_both_and_never_forwarded(servers, limited_key, upstream,
                                                                             usage_events):
    key = limited_key(allowed_models=["openai/tool-model"], rpm_limit=100)
    upstream.requests.clear()
    for url in servers:
        response = chat(url, key)
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/json"
        error = response.json()["error"]
        assert (error["type"], error["code"], error["param"]) == ("permission_error", "model_not_allowed", "model")
        assert "x-ratelimit-remaining-requests" not in response.headers  # refused before the limits count
        assert usage_events(response.headers["x-request-id"], expect=0) == []
    assert upstream.chat_requests() == []
    assert rate_limits(servers[0], key)["key"]["requests"]["remaining"] == 100
    assert chat(servers[1], key, model="openai/tool-model").status_code == 200
    assert orjson.loads(httpx.get(f"{servers[0]}/v1/models", headers={"Authorization": f"Bearer {key}"}).content)[
        "data"][0]["id"] == "openai/tool-model"


def test_provider_rpm_quota_is_exact_across_two_servers_and_tenants(servers, provider, limited_key, upstream):
    """A provider config's quota is the provider account's: shared by every tenant and every process."""
    from accounting.provider_configs.services import do_update_provider
    from accounting.tenants.services import do_create_api_key, do_create_tenant

    keys = [limited_key(), do_create_api_key(do_create_tenant("globex"), name="other")[1]]
    do_update_provider("test", provider, {"rpm_limit": 10})  # reaches both servers through the invalidation channel

    def answers(url):
        return httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {keys[0]}"}).status_code == 200

    for url in servers:
        wait_until(lambda url=url: answers(url), 10, interval=0.1, message="the servers up")
    time.sleep(1.5)  # the provider change reaches each process's registry within a second
    upstream.requests.clear()
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(40) as pool:
        responses = list(pool.map(lambda i: chat(servers[i % 2], keys[(i // 2) % 2]), range(40)))
    refilled = int((time.monotonic() - started) // 6)  # GCRA: a burst of 10, then one every 6 s
    ok = [r for r in responses if r.status_code == 200]
    assert 10 <= len(ok) <= 10 + refilled, sorted(r.status_code for r in responses)
    assert len(upstream.chat_requests()) == len(ok)
    for response in responses:
        if response.status_code != 200:
            assert response.status_code == 429
            error = response.json()["error"]
            assert (error["type"], error["code"]) == ("rate_limit_error", "provider_quota_exceeded")
            assert "provider openai" in error["message"] and int(response.headers["retry-after"]) >= 1
