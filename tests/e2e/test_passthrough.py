"""Provider-native passthrough (`/p/{provider}/…`) through the official SDKs and plain HTTP against the fake
native upstreams: bodies and the provider's own headers arrive as sent, only the credential is swapped; the
usage is read in the provider's format; allow-lists and the operator's switch hold. The pipeline's
guarantees (budgets, limits, scrubbing, deadline, hang-ups) are rows of tests/e2e/test_guarantee_matrix.py."""

import anthropic
import httpx
import pytest

from tests.fake_anthropic import STREAM_OUTPUT_TOKENS, STREAM_START_USAGE, USAGE

pytestmark = [pytest.mark.e2e]

UPSTREAM_KEY = "sk-ant-upstream-secret"
GEMINI_KEY = "gm-upstream-secret"


@pytest.fixture
def fake(anthropic_server):
    anthropic_server.requests.clear()
    anthropic_server.recorded.clear()
    return anthropic_server


@pytest.fixture
def anthropic_provider(make_provider, fake):
    return make_provider(name="anthropic", provider_type="anthropic", base_url=fake.base_url, api_key=UPSTREAM_KEY)


@pytest.fixture
def client(gateway, anthropic_provider, tenant_key):
    return anthropic.Anthropic(base_url=f"{gateway}/p/anthropic", api_key=tenant_key[2], max_retries=0)


def upstream_posts(fake) -> list[dict]:
    return [r for r in fake.requests if r["method"] == "POST"]


def test_the_anthropic_sdk_through_passthrough(client, fake, tenant_key, usage_events):
    body = {"model": "claude-sonnet-4-20250514", "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}],
            "metadata": {"user_id": "u-1"}}
    raw = client.messages.with_raw_response.create(**body, extra_body={"top_k": 5},
                                                   extra_headers={"anthropic-beta": "some-beta-2099"})
    body["top_k"] = 5
    message = raw.parse()
    assert message.content[0].text == "Hello from fake Claude!"
    [request] = upstream_posts(fake)
    assert request["path"] == "/v1/messages" and request["body"] == body  # as sent: nothing translated
    headers = request["headers"]
    assert headers["x-api-key"] == UPSTREAM_KEY and headers["anthropic-beta"] == "some-beta-2099"
    assert tenant_key[2] not in str(headers) and "authorization" not in headers
    [event] = usage_events(raw.headers["x-request-id"])
    prompt = USAGE["input_tokens"] + USAGE["cache_read_input_tokens"] + USAGE["cache_creation_input_tokens"]
    assert (event["endpoint"], event["provider"], event["usage_source"]) == ("/p/anthropic", "anthropic", "reported")
    assert (event["prompt_tokens"], event["completion_tokens"]) == (prompt, USAGE["output_tokens"])


def test_an_anthropic_stream_and_count_tokens_through_passthrough(client, fake, usage_events):
    with client.messages.stream(model="claude-sonnet-4-20250514", max_tokens=64,
                                messages=[{"role": "user", "content": "Hi"}]) as stream:
        text = "".join(stream.text_stream)
        request_id = stream.response.headers["x-request-id"]
    assert text == "Hello from fake Claude!"
    [event] = usage_events(request_id)
    prompt = sum(STREAM_START_USAGE[k] for k in ("input_tokens", "cache_read_input_tokens",
                                                  "cache_creation_input_tokens"))
    assert (event["stream"], event["prompt_tokens"], event["completion_tokens"], event["usage_source"]) == (
        True, prompt, STREAM_OUTPUT_TOKENS, "reported")
    counted = client.messages.count_tokens(model="claude-sonnet-4-20250514",
                                           messages=[{"role": "user", "content": "Hi"}])
    assert counted.input_tokens == 42
    assert upstream_posts(fake)[-1]["path"] == "/v1/messages/count_tokens"


def test_gemini_native_generate_content_through_passthrough(gateway, make_provider, gemini_server, tenant_key,
                                                            usage_events):
    make_provider(name="gemini", provider_type="gemini", base_url=gemini_server.base_url, api_key=GEMINI_KEY)
    gemini_server.requests.clear()
    body = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}
    response = httpx.post(f"{gateway}/p/gemini/v1beta/models/gemini-2.5-flash:generateContent", json=body,
                          headers={"x-goog-api-key": tenant_key[2]}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["candidates"][0]["content"]["parts"]
    [request] = [r for r in gemini_server.requests if r["method"] == "POST"]
    assert request["path"] == "/v1beta/models/gemini-2.5-flash:generateContent" and request["body"] == body
    assert request["headers"]["x-goog-api-key"] == GEMINI_KEY
    [event] = usage_events(response.headers["x-request-id"])
    assert (event["endpoint"], event["model"], event["usage_source"]) == ("/p/gemini", "gemini-2.5-flash", "reported")
    assert event["prompt_tokens"] > 0 and event["completion_tokens"] > 0


def test_a_key_allowed_only_openai_gets_403_on_anthropic_with_no_upstream_call(gateway, anthropic_provider, fake,
                                                                                tenant_key, usage_events):
    _, key, secret = tenant_key
    key.allowed_models = ["openai/*"]
    key.save()
    response = httpx.post(f"{gateway}/p/anthropic/v1/messages", headers={"x-api-key": secret},
                          json={"model": "claude-sonnet-4-20250514", "max_tokens": 8,
                                "messages": [{"role": "user", "content": "Hi"}]}, timeout=10)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "model_not_allowed"
    assert upstream_posts(fake) == []
    assert usage_events(response.headers["x-request-id"], expect=0) == []


def test_an_answer_without_usage_is_one_event_with_usage_source_none(gateway, provider, upstream, tenant_key,
                                                                      usage_events):
    response = httpx.get(f"{gateway}/p/openai/v1/models", headers={"Authorization": f"Bearer {tenant_key[2]}"},
                         timeout=10)
    assert response.status_code == 200
    assert "gpt-4o-mini" in {m["id"] for m in response.json()["data"]}
    assert upstream.requests[-1]["headers"]["authorization"] == "Bearer sk-upstream-secret"
    [event] = usage_events(response.headers["x-request-id"])
    assert (event["usage_source"], event["total_tokens"], event["endpoint"]) == ("none", 0, "/p/openai")


def test_the_operator_can_turn_passthrough_off(gateway, provider, upstream, tenant_key, settings):
    settings.PASSTHROUGH_PROVIDERS = frozenset({"anthropic"})
    upstream.requests.clear()
    response = httpx.post(f"{gateway}/p/openai/v1/chat/completions",
                          headers={"Authorization": f"Bearer {tenant_key[2]}"},
                          json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}, timeout=10)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "route_not_found"
    assert upstream.requests == []


def test_an_unknown_provider_is_404(gateway, provider, tenant_key):
    response = httpx.get(f"{gateway}/p/nowhere/v1/models", headers={"Authorization": f"Bearer {tenant_key[2]}"},
                         timeout=10)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "provider_not_found"
