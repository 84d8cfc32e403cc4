"""A tenant's input must not crash, bloat or stall the gateway (issue #12, items 3 and 4): model names
are bounded and only known models become Prometheus labels; JSON too deep or too big is a 400."""

import time

import httpx
import orjson
import pytest

pytestmark = [pytest.mark.e2e]

HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture
def post(gateway, tenant_key):
    def send(content: bytes, path="/v1/chat/completions", timeout=30.0):
        return httpx.post(f"{gateway}{path}", content=content, timeout=timeout,
                          headers={"Authorization": send.key, "content-type": "application/json"})

    send.key = f"Bearer {tenant_key[2]}"
    return send


def assert_400(response, param, code):
    assert response.status_code == 400, response.text[:300]
    error = response.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)
    return error


@pytest.mark.parametrize("name", ["m" * 257, "gpt 4o", "gpt-4o\n", "gpt-4o\x00", "gpt\u200b4o", "\t"])
def test_bad_model_names_are_400(post, provider, upstream, usage_events, name):
    response = post(orjson.dumps({"model": name, "messages": HELLO}))
    assert response.status_code == 400 and response.json()["error"]["param"] == "model"
    assert upstream.chat_requests() == [] and usage_events(expect=0) == []


def test_a_two_mib_model_name_is_400_at_once(post, provider, upstream, usage_events):
    started = time.perf_counter()
    response = post(orjson.dumps({"model": "openai/" + "x" * (2 * 1024 * 1024), "messages": HELLO}))
    assert time.perf_counter() - started < 1.0
    error = assert_400(response, "model", "invalid_value")
    assert len(error["message"]) < 200  # the name is not echoed back
    assert upstream.chat_requests() == [] and usage_events(expect=0) == []


def test_embeddings_model_name_is_bounded_too(post, provider, upstream):
    response = post(orjson.dumps({"model": "e" * 300, "input": "hi"}), path="/v1/embeddings")
    assert_400(response, "model", "invalid_value")


def test_unknown_model_names_do_not_grow_metrics(gateway, post, provider, upstream, usage_events, settings):
    settings.METRICS_TOKEN = "scrape-me"

    def scrape() -> str:
        response = httpx.get(f"{gateway}/metrics", headers={"Authorization": "Bearer scrape-me"}, timeout=10)
        assert response.status_code == 200
        return response.text

    # The fake upstream answers any model; `openai/<name>` sends it there whether listed or not.
    listed = httpx.get(f"{gateway}/v1/models", headers={"Authorization": post.key}, timeout=10).json()["data"]
    assert "openai/gpt-4o-mini" in [m["id"] for m in listed]  # (and the registry has fetched the list)
    assert post(orjson.dumps({"model": "openai/gpt-4o-mini", "messages": HELLO})).status_code == 200
    assert post(orjson.dumps({"model": "openai/warm-up-unlisted", "messages": HELLO})).status_code == 200
    usage_events(expect=2)
    before = scrape()
    names = [f"unlisted-{i}-" + "q" * 200 for i in range(10)]
    for name in names:
        assert post(orjson.dumps({"model": f"openai/{name}", "messages": HELLO})).status_code == 200
    assert len(usage_events(expect=12)) == 12
    after = scrape()
    assert not any(name in after for name in names)
    assert 'model="other"' in after and 'model="gpt-4o-mini"' in after  # known models keep their label
    assert len(after) - len(before) < 200  # only counter values changed, no new series


@pytest.mark.parametrize("depth", [100, 300, 1000])
def test_deep_json_is_400_not_500(post, provider, upstream, usage_events, depth):
    raw = orjson.dumps({"model": "gpt-4o-mini", "messages": HELLO})[:-1] + (
        b',"metadata":' + b"[" * depth + b"]" * depth + b"}")
    error = assert_400(post(raw), None, "json_too_complex")
    assert "deeper than 64" in error["message"]
    assert upstream.chat_requests() == [] and usage_events(expect=0) == []


def test_deep_json_in_a_message_is_400(post, provider, upstream):
    content = [{"type": "text", "text": "hi", "x": orjson.loads(b"[" * 200 + b"]" * 200)}]
    assert_400(post(orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]})),
               None, "json_too_complex")


def test_nine_mib_of_empty_objects_is_400(post, provider, upstream, usage_events, settings):
    raw = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"x":[' + b",".join(
        [b"{}"] * (9 * 1024 * 1024 // 3)) + b"]}"
    assert len(raw) < settings.BODY_SIZE_LIMIT
    started = time.perf_counter()
    error = assert_400(post(raw), None, "json_too_complex")
    assert "more than 100000" in error["message"]
    assert time.perf_counter() - started < 5.0
    assert upstream.chat_requests() == [] and usage_events(expect=0) == []
    for path in ("/v1/embeddings",):  # every /v1 JSON endpoint reads bodies the same way
        assert_400(post(raw.replace(b'"messages"', b'"input":"x","m"'), path=path), None, "json_too_complex")
