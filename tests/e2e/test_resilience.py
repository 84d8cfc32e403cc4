"""Virtual models, failover, retries and the circuit breaker, end to end through the openai SDK."""

import openai
import pytest

from gomodel.gateway.runtime import invalidate_local

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def two_providers(make_provider, upstream):
    first = make_provider(name="primary", provider_type="openai", base_url=f"http://127.0.0.1:{upstream.port}/a/v1")
    second = make_provider(name="backup", provider_type="groq", base_url=f"http://127.0.0.1:{upstream.port}/b/v1",
                           api_key="gsk-backup")
    return first, second


@pytest.fixture
def client(gateway, tenant_key):
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key=tenant_key[2], max_retries=0)


def make_alias(name, targets):
    from providers.models import ModelAlias

    return ModelAlias.objects.create(name=name, targets=targets)


def paths(upstream):
    return [(r["path"], r["body"]["model"]) for r in upstream.chat_requests()]


def test_alias_spreads_requests_by_weight(client, two_providers, upstream, usage_events):
    make_alias("smart", [{"target": "primary/gpt-4o-mini", "weight": 3}, {"target": "backup/tool-model", "weight": 1}])
    providers = [client.chat.completions.create(model="smart", messages=[{"role": "user", "content": "hi"}]).provider
                 for _ in range(8)]
    assert providers.count("primary") == 6 and providers.count("backup") == 2
    events = usage_events(expect=8)
    assert {e["requested_model"] for e in events} == {"smart"}
    assert sorted(e["provider"] for e in events) == sorted(providers)


def test_alias_fails_over_to_the_next_target_on_5xx(client, two_providers, upstream, usage_events):
    make_alias("resilient", [{"target": "primary/fail-500", "weight": 5},
                             {"target": "backup/gpt-4o-mini", "weight": 1}])
    raw = client.chat.completions.with_raw_response.create(model="resilient",
                                                           messages=[{"role": "user", "content": "hi"}])
    completion = raw.parse()
    assert completion.provider == "backup"
    # primary was tried 1 + RETRY_MAX times (500 is not retried: only 429/502/503/504 are), then backup.
    assert paths(upstream) == [("/a/v1/chat/completions", "fail-500"), ("/b/v1/chat/completions", "gpt-4o-mini")]
    [event] = usage_events(raw.headers["x-request-id"])
    assert (event["provider"], event["model"], event["status"]) == ("backup", "gpt-4o-mini", 200)
    assert [(a["provider"], a["status"]) for a in event["attempts"]] == [("primary", 502), ("backup", 200)]


def test_failover_rules_from_the_environment(client, two_providers, upstream, settings):
    settings.FAILOVER_RULES_JSON = '{"primary/fail-429": ["backup/gpt-4o-mini"]}'
    invalidate_local("providers")
    completion = client.chat.completions.create(model="primary/fail-429", messages=[{"role": "user", "content": "x"}])
    assert completion.provider == "backup"
    # Retry-After 7 s is beyond RETRY_MAX_WAIT (1 s in tests): no retry on primary, straight to backup.
    assert paths(upstream) == [("/a/v1/chat/completions", "fail-429"), ("/b/v1/chat/completions", "gpt-4o-mini")]


def test_no_failover_on_a_client_error(client, two_providers, upstream):
    make_alias("strict", ["primary/fail-400", "backup/gpt-4o-mini"])
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="strict", messages=[{"role": "user", "content": "x"}])
    assert caught.value.body["message"] == "temperature is out of range"
    assert paths(upstream) == [("/a/v1/chat/completions", "fail-400")]


def test_streams_fail_over_before_the_first_byte(client, two_providers, upstream):
    make_alias("streamy", ["primary/fail-500", "backup/gpt-4o-mini"])
    chunks = list(client.chat.completions.create(model="streamy", stream=True,
                                                 messages=[{"role": "user", "content": "x"}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from the fake upstream!"
    assert {c.provider for c in chunks} == {"backup"}
    assert [m for _, m in paths(upstream)] == ["fail-500", "gpt-4o-mini"]


def test_streams_are_never_retried_after_they_start(gateway, tenant_key, two_providers, upstream, usage_events):
    import httpx

    make_alias("breaky", ["primary/break-stream", "backup/gpt-4o-mini"])
    with httpx.stream("POST", f"{gateway}/v1/chat/completions", headers={"x-api-key": tenant_key[2]},
                      json={"model": "breaky", "stream": True, "messages": [{"role": "user", "content": "x"}]}) as r:
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1].startswith('data: {"error"') and "data: [DONE]" not in lines
    assert [m for _, m in paths(upstream)] == ["break-stream"]


def test_retries_503_then_succeeds(client, two_providers, upstream, usage_events):
    upstream.flaky_failures = 2
    raw = client.chat.completions.with_raw_response.create(model="primary/flaky",
                                                           messages=[{"role": "user", "content": "x"}])
    assert raw.parse().choices[0].message.content == "Hello from the fake upstream!"
    assert len(upstream.chat_requests()) == 3
    [event] = usage_events(raw.headers["x-request-id"])
    assert [a["status"] for a in event["attempts"]] == [502, 502, 200]


def test_retries_give_up_after_retry_max(client, two_providers, upstream, settings):
    upstream.flaky_failures = 10
    settings.RETRY_MAX = 1
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="primary/flaky", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 502 and caught.value.body["type"] == "provider_error"
    assert len(upstream.chat_requests()) == 2


def test_retry_max_zero_turns_retries_off(client, two_providers, upstream, settings):
    upstream.flaky_failures = 1
    settings.RETRY_MAX = 0
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(model="primary/flaky", messages=[{"role": "user", "content": "x"}])
    assert len(upstream.chat_requests()) == 1


def test_open_circuit_is_skipped_by_aliases(client, two_providers, upstream, settings):
    settings.RETRY_MAX = 0
    for _ in range(5):  # five consecutive failures open primary's circuit
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(model="primary/fail-500", messages=[{"role": "user", "content": "x"}])
    upstream.requests.clear()
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="primary/gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 502 and caught.value.body["code"] == "circuit_open"
    assert upstream.chat_requests() == []  # nothing was sent to the open circuit
    make_alias("spread", [{"target": "primary/gpt-4o-mini", "weight": 10},
                          {"target": "backup/gpt-4o-mini", "weight": 1}])
    answered = {client.chat.completions.create(model="spread", messages=[{"role": "user", "content": "x"}]).provider
                for _ in range(3)}
    assert answered == {"backup"}


def test_embeddings_route_retry_and_record_usage(client, two_providers, upstream, usage_events):
    raw = client.embeddings.with_raw_response.create(model="primary/text-embedding-3-small", input=["a", "b"])
    result = raw.parse()
    assert [d.index for d in result.data] == [0, 1] and result.usage.prompt_tokens == 6
    sent = [r for r in upstream.requests if r["path"].endswith("/embeddings")]
    assert sent[0]["path"] == "/a/v1/embeddings" and sent[0]["body"]["input"] == ["a", "b"]
    assert sent[0]["headers"]["authorization"] == "Bearer sk-upstream-secret"
    [event] = usage_events(raw.headers["x-request-id"])
    assert (event["endpoint"], event["prompt_tokens"], event["usage_source"]) == ("/v1/embeddings", 6, "reported")


def test_embeddings_bad_input_is_a_400_and_records_nothing(gateway, tenant_key, two_providers, upstream,
                                                           usage_events):
    import httpx

    response = httpx.post(f"{gateway}/v1/embeddings", headers={"x-api-key": tenant_key[2]},
                          json={"model": "primary/text-embedding-3-small", "input": [1.5]})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "input"
    assert upstream.requests == [] and usage_events(expect=0) == []
