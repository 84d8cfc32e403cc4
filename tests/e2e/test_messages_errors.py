"""Every failure of POST /v1/messages answered in Anthropic's envelope, `{"type": "error", "error": {"type",
"message"}}`, with the gateway's statuses; bad input reaches no upstream and records nothing."""

import anthropic
import httpx
import orjson
import pytest

pytestmark = [pytest.mark.e2e]

HELLO = [{"role": "user", "content": "Hello"}]
ANSWERED: list[str] = []  # the request ids of this test's refused requests


@pytest.fixture(autouse=True)
def _answered():
    ANSWERED.clear()


@pytest.fixture
def fake(anthropic_server, make_provider):
    anthropic_server.requests.clear()
    make_provider(name="anthropic", provider_type="anthropic", base_url=anthropic_server.base_url,
                  api_key="sk-ant-upstream")
    return anthropic_server


@pytest.fixture
def client(gateway, fake, tenant_key):
    return anthropic.Anthropic(base_url=gateway, api_key=tenant_key[2], max_retries=0)


def envelope(response: httpx.Response, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    ANSWERED.append(response.headers["x-request-id"])
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["type"] == "error" and set(body) == {"type", "error", "request_id"}
    assert body["request_id"] == response.headers["x-request-id"]
    assert set(body["error"]) == {"type", "message"}
    assert body["error"]["type"] == kind
    return body["error"]["message"]


def post(gateway, body, key=None, path="/v1/messages", **headers):
    if key is not None:
        headers["x-api-key"] = key
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(f"{gateway}{path}", content=content, headers={"content-type": "application/json", **headers},
                      timeout=10)


def refused(info) -> None:
    ANSWERED.append(info.value.response.headers["x-request-id"])


def nothing_happened(fake, usage_events):
    """No upstream heard of this test's refused requests, and none of them recorded usage (events are
    matched by request id: an earlier test's event may still be on its way to the stream)."""
    assert [r for r in fake.requests if r["method"] == "POST"] == []
    assert ANSWERED
    usage_events(ANSWERED[-1], expect=1, timeout=0.3)  # give a wrongly recorded event the time to show
    assert [rid for rid in ANSWERED if usage_events(rid, expect=0, timeout=0)] == []


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
def test_missing_and_invalid_keys_are_401(gateway, fake, tenant_key, usage_events, path):
    body = {"model": "claude-opus-4-6", "max_tokens": 10, "messages": HELLO}
    assert "x-api-key" in envelope(post(gateway, body, path=path), 401, "authentication_error")
    envelope(post(gateway, body, key="sk_gom_not_a_key", path=path), 401, "authentication_error")
    # The bearer form works as well as x-api-key; a wrong one is refused the same way.
    envelope(post(gateway, body, path=path, authorization="Bearer sk_gom_nope"), 401, "authentication_error")
    bad = anthropic.Anthropic(base_url=gateway, api_key="sk_gom_wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as info:
        bad.messages.create(model="claude-opus-4-6", max_tokens=10, messages=HELLO)
    assert info.value.body["error"]["type"] == "authentication_error"
    refused(info)
    nothing_happened(fake, usage_events)


def test_bearer_auth_is_accepted(gateway, fake, tenant_key):
    response = post(gateway, {"model": "claude-opus-4-6", "max_tokens": 10, "messages": HELLO},
                    authorization=f"Bearer {tenant_key[2]}")
    assert response.status_code == 200 and response.json()["type"] == "message"


BAD_BODIES = [
    (b"{not json", None),
    (b"[1, 2]", None),
    ({"max_tokens": 10, "messages": HELLO}, "model"),
    ({"model": "claude-opus-4-6", "messages": HELLO}, "max_tokens"),
    ({"model": "claude-opus-4-6", "max_tokens": -1, "messages": HELLO}, "max_tokens"),
    ({"model": "claude-opus-4-6", "max_tokens": 10}, "messages"),
    ({"model": "claude-opus-4-6", "max_tokens": 10, "messages": []}, "messages"),
    # a system message may not open the conversation (Anthropic's placement rule)
    ({"model": "claude-opus-4-6", "max_tokens": 10, "messages": [{"role": "system", "content": "x"}]},
     "messages[0]"),
    ({"model": "claude-opus-4-6", "max_tokens": 10, "messages": [{"role": "tool", "content": "x"}]},
     "messages[0].role"),
    ({"model": "claude-opus-4-6", "max_tokens": 10, "messages": [{"role": "user", "content": 7}]},
     "messages[0].content"),
    ({"model": "claude-opus-4-6", "max_tokens": 10, "messages": [
        {"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content[0]"),
    ({"model": "claude-opus-4-6", "max_tokens": 10, "messages": [
        {"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": "x"}}]}]},
     "messages[0].content[0]"),
    ({"model": "claude-opus-4-6", "max_tokens": 10, "messages": [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "x"}]}]},
     "messages[0].content[0].input"),
    ({"model": "claude-opus-4-6", "max_tokens": 10, "messages": [
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm"}]}]},
     "messages[0].content[0]"),
    ({"model": "claude-opus-4-6", "max_tokens": 10, "messages": HELLO, "system": [{"type": "image"}]},
     "system[0].text"),
    ({"model": "claude-opus-4-6", "max_tokens": 10, "messages": HELLO, "tools": [{"name": "f"}]},
     "tools[0]"),
    ({"model": "claude-opus-4-6", "max_tokens": 10, "messages": HELLO, "tool_choice": {"type": "maybe"}},
     "tool_choice.type"),
    ({"model": "claude-opus-4-6", "max_tokens": 10, "messages": HELLO, "thinking": {"type": "enabled"}},
     "thinking"),
    ({"model": "claude-opus-4-6", "max_tokens": 10, "messages": HELLO, "stream": "yes"}, "stream"),
    ({"model": "claude-opus-4-6", "max_tokens": 10, "messages": HELLO, "stop_sequences": "END"},
     "stop_sequences"),
    ({"model": "claude-opus-4-6", "max_tokens": 10, "messages": HELLO, "temperature": "hot"}, "temperature"),
]


@pytest.mark.parametrize("body,field", BAD_BODIES)
def test_bad_input_is_400_and_reaches_nothing(gateway, fake, tenant_key, usage_events, body, field):
    message = envelope(post(gateway, body, tenant_key[2]), 400, "invalid_request_error")
    if field is not None:
        assert f"'{field}'" in message
    nothing_happened(fake, usage_events)


def test_sdk_sees_400_as_bad_request(client, fake, usage_events):
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model="claude-opus-4-6", max_tokens=10, messages=[{"role": "user", "content": [
            {"type": "text", "text": 5}]}])
    assert info.value.status_code == 400
    assert info.value.body["error"]["type"] == "invalid_request_error"
    refused(info)
    nothing_happened(fake, usage_events)


def test_unknown_model_is_404(client, fake, usage_events):
    with pytest.raises(anthropic.NotFoundError) as info:
        client.messages.create(model="claude-nonexistent-9", max_tokens=10, messages=HELLO)
    assert info.value.body["error"]["type"] == "not_found_error"
    refused(info)
    with pytest.raises(anthropic.NotFoundError) as info:
        client.messages.count_tokens(model="claude-nonexistent-9", messages=HELLO)
    refused(info)
    nothing_happened(fake, usage_events)


def test_body_over_the_limit_is_413(gateway, fake, tenant_key, usage_events, settings):
    settings.BODY_SIZE_LIMIT = 1000
    body = {"model": "claude-opus-4-6", "max_tokens": 10, "messages": [{"role": "user", "content": "x" * 2000}]}
    envelope(post(gateway, body, tenant_key[2]), 413, "request_too_large")
    nothing_happened(fake, usage_events)


def test_wrong_method_is_405_in_anthropics_envelope(gateway, fake, tenant_key):
    response = httpx.get(f"{gateway}/v1/messages", headers={"x-api-key": tenant_key[2]}, timeout=10)
    envelope(response, 405, "invalid_request_error")
    assert response.headers["allow"] == "POST"


def test_upstream_429_keeps_retry_after(client, fake, usage_events):
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(model="claude-rate-limited", max_tokens=10, messages=HELLO)
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "30"
    assert info.value.body["error"]["type"] == "rate_limit_error"
    [event] = usage_events(info.value.response.headers["x-request-id"])
    assert (event["status"], event["endpoint"]) == (429, "/v1/messages")


def test_upstream_overloaded_is_502_api_error(client, fake, usage_events):
    with pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(model="claude-overloaded", max_tokens=10, messages=HELLO)
    assert info.value.status_code == 502
    assert info.value.body["error"]["type"] == "api_error"
    assert "529" in info.value.body["error"]["message"]
    assert "sk-ant-upstream" not in info.value.response.text
    [event] = usage_events(info.value.response.headers["x-request-id"])
    assert (event["status"], event["usage_source"]) == (502, "none")


def test_upstream_400_passes_its_message(client, fake, usage_events):
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model="claude-fail-400", max_tokens=10, messages=HELLO)
    assert info.value.body["error"] == {"type": "invalid_request_error",
                                        "message": "messages: text content blocks must be non-empty"}
    with pytest.raises(anthropic.BadRequestError):
        client.messages.count_tokens(model="claude-fail-400", messages=HELLO)


def test_openai_format_upstream_failures(gateway, provider, upstream, tenant_key, usage_events):
    client = anthropic.Anthropic(base_url=gateway, api_key=tenant_key[2], max_retries=0)
    with pytest.raises(anthropic.InternalServerError) as info:
        client.messages.create(model="fail-500", max_tokens=10, messages=HELLO)
    assert (info.value.status_code, info.value.body["error"]["type"]) == (502, "api_error")
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(model="fail-429", max_tokens=10, messages=HELLO)
    # What only Anthropic can take is refused before any upstream call, and records nothing.
    upstream.requests.clear()
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model="gpt-4o-mini", max_tokens=10, messages=HELLO,
                               tools=[{"type": "web_search_20250305", "name": "web_search"}])
    assert "only works with Anthropic" in info.value.body["error"]["message"]
    assert upstream.chat_requests() == []


def test_mid_stream_error_event_is_relayed(client, fake, usage_events):
    with pytest.raises(anthropic.APIStatusError) as info:
        with client.messages.stream(model="claude-error-stream", max_tokens=10, messages=HELLO) as stream:
            request_id = stream.response.headers["x-request-id"]
            for _ in stream:
                pass
    assert info.value.body["error"]["type"] == "overloaded_error"
    [event] = usage_events(request_id)
    assert (event["status"], event["stream"], event["usage_source"]) == (502, True, "estimated")
    assert event["completion_tokens"] > 0  # what was relayed before the error is billed


@pytest.mark.parametrize("model,target", [("claude-break-stream", "anthropic"), ("break-stream", "openai")])
def test_broken_stream_ends_with_an_error_event(gateway, fake, provider, upstream, tenant_key, usage_events, model,
                                                target):
    body = {"model": model, "max_tokens": 10, "messages": HELLO, "stream": True}
    with httpx.stream("POST", f"{gateway}/v1/messages", headers={"x-api-key": tenant_key[2]}, json=body,
                      timeout=10) as response:
        assert response.status_code == 200
        text = response.read().decode()
    assert "content_block_delta" in text
    last = text.strip().split("\n\n")[-1]
    assert last.startswith("event: error\ndata: ")
    error = orjson.loads(last.split("data: ", 1)[1])
    assert error["type"] == "error" and error["error"]["type"] == "api_error"
    assert "message_stop" not in text
    [event] = usage_events(response.headers["x-request-id"])
    assert (event["provider"], event["status"], event["usage_source"]) == (target, 502, "estimated")


def test_client_hanging_up_mid_stream_is_recorded_once_as_499(gateway, provider, upstream, tenant_key, usage_events):
    body = {"model": "long-stream", "max_tokens": 1000, "messages": HELLO, "stream": True}
    lines = []
    with httpx.stream("POST", f"{gateway}/v1/messages", json=body, timeout=10,
                      headers={"x-api-key": tenant_key[2]}) as response:
        for line in response.iter_lines():
            lines.append(line)
            if len(lines) >= 12:
                break
        request_id = response.headers["x-request-id"]
    assert lines[0] == "event: message_start"
    [event] = usage_events(request_id, timeout=5.0)
    assert (event["status"], event["error_type"], event["stream"]) == (499, "client_disconnected", True)
    assert event["usage_source"] == "estimated"
    assert 0 < event["completion_tokens"] < 150  # what was relayed, not the 300 pieces the upstream had
    assert event["prompt_tokens"] > 0


def test_limits_and_allow_lists_apply_in_anthropics_envelope(gateway, fake, tenant_key, usage_events):
    """The key's rate limit and model allow-list govern /v1/messages (and count_tokens) as they do chat."""
    from accounting.tenants.services import do_create_api_key

    key, limited = do_create_api_key(tenant_key[0], name="limited")
    key.rpm_limit, key.allowed_models = 1, ["anthropic/*"]
    key.save()
    body = {"model": "claude-opus-4-6", "max_tokens": 10, "messages": HELLO}
    ok = post(gateway, body, limited)
    assert ok.status_code == 200, ok.text
    assert ok.headers["x-ratelimit-remaining-requests"] == "0"
    message = envelope(post(gateway, body, limited), 429, "rate_limit_error")
    assert "requests-per-minute" in message
    refused = envelope(post(gateway, {k: v for k, v in body.items() if k != "max_tokens"}, limited,
                            path="/v1/messages/count_tokens"), 429, "rate_limit_error")
    assert refused

    narrow, narrow_key = do_create_api_key(tenant_key[0], name="narrow")
    narrow.allowed_models = ["openai/*"]
    narrow.save()
    fake.requests.clear()
    ANSWERED.clear()
    envelope(post(gateway, body, narrow_key), 403, "permission_error")
    nothing_happened(fake, usage_events)
