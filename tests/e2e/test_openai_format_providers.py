"""Each OpenAI-format seed provider: the URL, auth header and body that reach its upstream."""

import openai
import pytest

pytestmark = [pytest.mark.e2e]

OPENAI_FORMAT = ["openai", "groq", "openrouter", "deepseek", "zai", "xai", "minimax", "xiaomi", "opencode_go",
                 "oracle", "ollama", "bailian"]


@pytest.fixture
def client(gateway, tenant_key):
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key=tenant_key[2], max_retries=0)


def base_url(upstream, name):
    return f"http://127.0.0.1:{upstream.port}/{name}/v1"


@pytest.mark.parametrize("provider_type", OPENAI_FORMAT)
def test_provider_gets_its_url_auth_and_body(client, make_provider, upstream, usage_events, provider_type):
    key = "" if provider_type == "ollama" else f"key-{provider_type}"
    make_provider(name=provider_type, provider_type=provider_type, base_url=base_url(upstream, provider_type),
                  api_key=key)
    raw = client.chat.completions.with_raw_response.create(
        model=f"{provider_type}/gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}], max_tokens=50,
        extra_body={"x_passthrough": True})
    assert raw.parse().provider == provider_type
    [sent] = upstream.chat_requests()
    assert sent["method"] == "POST" and sent["path"] == f"/{provider_type}/v1/chat/completions"
    if provider_type == "ollama":
        assert "authorization" not in sent["headers"]  # Ollama needs no key
    else:
        assert sent["headers"]["authorization"] == f"Bearer key-{provider_type}"
    assert sent["body"]["model"] == "gpt-4o-mini"
    assert sent["body"]["messages"] == [{"role": "user", "content": "Hello"}]
    assert sent["body"]["x_passthrough"] is True and sent["body"]["max_tokens"] == 50
    [event] = usage_events(raw.headers["x-request-id"])
    assert (event["provider"], event["provider_type"], event["prompt_tokens"]) == (provider_type, provider_type, 11)


def test_openai_reasoning_models_take_max_completion_tokens_and_no_temperature(client, make_provider, upstream):
    make_provider(name="openai", provider_type="openai", base_url=base_url(upstream, "openai"))
    client.chat.completions.create(model="openai/o3-mini", messages=[{"role": "user", "content": "x"}],
                                   max_tokens=100, temperature=0.5, extra_body={"reasoning": {"effort": "max"}})
    body = upstream.chat_requests()[0]["body"]
    assert body["max_completion_tokens"] == 100 and "max_tokens" not in body
    assert "temperature" not in body and "reasoning" not in body
    assert body["reasoning_effort"] == "high"  # o-series tops out at high

    upstream.requests.clear()
    client.chat.completions.create(model="openai/gpt-5.2", messages=[{"role": "user", "content": "x"}],
                                   extra_body={"reasoning": {"effort": "max"}})
    assert upstream.chat_requests()[0]["body"]["reasoning_effort"] == "xhigh"

    upstream.requests.clear()
    client.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
                                   max_tokens=10, temperature=0.2)
    body = upstream.chat_requests()[0]["body"]
    assert body["max_tokens"] == 10 and body["temperature"] == 0.2  # other models untouched


@pytest.mark.parametrize("effort,expected", [("low", "high"), ("medium", "high"), ("high", "high"),
                                             ("xhigh", "max"), ("max", "max")])
def test_deepseek_effort_levels(client, make_provider, upstream, effort, expected):
    make_provider(name="deepseek", provider_type="deepseek", base_url=base_url(upstream, "deepseek"))
    client.chat.completions.create(model="deepseek/deepseek-reasoner", messages=[{"role": "user", "content": "x"}],
                                   extra_body={"reasoning": {"effort": effort}})
    body = upstream.chat_requests()[0]["body"]
    assert body["reasoning_effort"] == expected and "reasoning" not in body


def test_openrouter_gets_attribution_headers(client, make_provider, upstream):
    make_provider(name="openrouter", provider_type="openrouter", base_url=base_url(upstream, "openrouter"))
    client.chat.completions.create(model="openrouter/meta-llama/llama-3.1-8b-instruct",
                                   messages=[{"role": "user", "content": "x"}])
    [sent] = upstream.chat_requests()
    assert sent["headers"]["http-referer"] and sent["headers"]["x-title"] == "GoModel"
    assert sent["body"]["model"] == "meta-llama/llama-3.1-8b-instruct"


@pytest.mark.parametrize("temperature,expected", [(0, 0.01), (-1, 0.01), (0.7, 0.7)])
def test_minimax_never_gets_a_temperature_at_or_below_zero(client, make_provider, upstream, temperature, expected):
    make_provider(name="minimax", provider_type="minimax", base_url=base_url(upstream, "minimax"))
    client.chat.completions.create(model="minimax/MiniMax-M2", messages=[{"role": "user", "content": "x"}],
                                   temperature=temperature)
    assert upstream.chat_requests()[0]["body"]["temperature"] == expected


def test_other_providers_get_a_flat_reasoning_effort(client, make_provider, upstream):
    make_provider(name="xai", provider_type="xai", base_url=base_url(upstream, "xai"))
    client.chat.completions.create(model="xai/grok-3-mini", messages=[{"role": "user", "content": "x"}],
                                   extra_body={"reasoning": {"effort": "xhigh"}})
    body = upstream.chat_requests()[0]["body"]
    assert body["reasoning_effort"] == "high" and "reasoning" not in body
