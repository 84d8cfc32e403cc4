"""Every way a /v1 request can fail, seen from the client: the HTTP status, the error envelope
{"error": {"type", "message", "param", "code"}}, and what did (or did not) reach the upstream and the
usage stream."""

import socket
from datetime import timedelta

import httpx
import openai
import orjson
import pytest

pytestmark = [pytest.mark.e2e]

HELLO = [{"role": "user", "content": "Hello"}]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_envelope(response: httpx.Response, status: int, type: str, param=None, code=None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"type", "message", "param", "code"}
    assert error["type"] == type
    assert isinstance(error["message"], str) and error["message"]
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    return error


@pytest.fixture
def post(gateway, tenant_key):
    """POST /v1/chat/completions with the tenant's key (or the given headers)."""

    def send(body=None, *, content=None, headers=None, timeout=10.0):
        headers = {"Authorization": f"Bearer {tenant_key[2]}"} if headers is None else headers
        if content is None:
            content = orjson.dumps(body)
            headers = {"content-type": "application/json", **headers}
        return httpx.post(f"{gateway}/v1/chat/completions", content=content, headers=headers, timeout=timeout)

    return send


def chat(model="gpt-4o-mini", **extra):
    return {"model": model, "messages": HELLO, **extra}


# -- 400: the body --------------------------------------------------------------------------------

BAD_BODIES = [  # (raw body, the param the error must name, case name)
    (b'{"model": "gpt-4o-mini", "messages": [', None, "invalid-json"),
    (b"", None, "empty-body"),
    (b'[{"model": "gpt-4o-mini"}]', None, "json-array"),
    (b'"just a string"', None, "json-string"),
    (orjson.dumps({"messages": HELLO}), "model", "missing-model"),
    (orjson.dumps({"model": 42, "messages": HELLO}), "model", "model-is-a-number"),
    (orjson.dumps({"model": "", "messages": HELLO}), "model", "model-is-empty"),
    (orjson.dumps({"model": "gpt-4o-mini"}), "messages", "missing-messages"),
    (orjson.dumps({"model": "gpt-4o-mini", "messages": "Hello"}), "messages", "messages-a-string"),
    (orjson.dumps({"model": "gpt-4o-mini", "messages": {"role": "user"}}), "messages", "messages-an-object"),
    (orjson.dumps({"model": "gpt-4o-mini", "messages": []}), "messages", "messages-empty"),
    (orjson.dumps({"model": "gpt-4o-mini", "messages": ["Hello"]}), "messages[0]", "message-not-an-object"),
    (orjson.dumps({"model": "gpt-4o-mini", "messages": [{"content": "Hi"}]}), "messages[0].role",
     "message-without-role"),
    (orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": 5}]}), "messages[0].content",
     "message-content-a-number"),
    (orjson.dumps({**chat(), "stream": "yes"}), "stream", "stream-a-string"),
    (orjson.dumps({**chat(), "stream": 1}), "stream", "stream-a-number"),
    (orjson.dumps({**chat(), "stream": True, "stream_options": {"include_usage": "yes"}}),
     "stream_options.include_usage", "include-usage-a-string"),
    (orjson.dumps({**chat(), "max_tokens": 0}), "max_tokens", "max-tokens-zero"),
    (orjson.dumps({**chat(), "temperature": "hot"}), "temperature", "temperature-a-string"),
    (orjson.dumps({**chat(), "provider": 3}), "provider", "provider-a-number"),
    (orjson.dumps({**chat(), "reasoning": {"effort": "extreme"}}), "reasoning.effort", "unknown-reasoning-effort"),
]


def test_bad_body_is_400_naming_the_field_and_goes_nowhere(post, provider, upstream, usage_events, subtests):
    # One test (one database flush) for all the cases; each is reported on its own.
    for content, param, name in BAD_BODIES:
        with subtests.test(name):
            response = post(content=content)
            error = assert_envelope(response, 400, "invalid_request_error", param=param)
            if param is None:
                assert error["code"] == "invalid_json"
            else:
                assert f"'{param}'" in error["message"]
            assert response.headers["x-request-id"].startswith("req_")
            assert upstream.chat_requests() == []
    assert usage_events(expect=0) == []


def test_null_optional_fields_are_accepted(post, provider, upstream):
    response = post(chat(stream=None, temperature=None, max_tokens=None, provider=None))
    assert response.status_code == 200, response.text
    assert len(upstream.chat_requests()) == 1


# -- 401: the key ----------------------------------------------------------------------------------

def _expired_key(tenant):
    from django.utils import timezone

    from accounting.tenants.services import do_create_api_key

    return do_create_api_key(tenant, name="old", expires_at=timezone.now() - timedelta(minutes=1))[1]


def _revoked_key(tenant):
    from accounting.tenants.services import do_create_api_key, do_revoke_api_key

    key, plaintext = do_create_api_key(tenant, name="revoked")
    do_revoke_api_key(key)
    return plaintext


def _inactive_tenant_key(tenant):
    from accounting.tenants.services import do_create_api_key, do_create_tenant

    other = do_create_tenant("gone", "Gone Inc")
    plaintext = do_create_api_key(other, name="k")[1]
    other.active = False
    other.save()
    return plaintext


BAD_KEYS = [  # (the headers, made from the tenant; expected code; case name)
    (lambda tenant: {}, "missing_api_key", "no-key"),
    (lambda tenant: {"Authorization": "Bearer"}, "missing_api_key", "empty-bearer"),
    (lambda tenant: {"Authorization": "Basic dXNlcjpwYXNz"}, "missing_api_key", "basic-auth"),
    (lambda tenant: {"Authorization": "Bearer sk_gom_" + "x" * 43}, "invalid_api_key", "wrong-key"),
    (lambda tenant: {"x-api-key": "sk_gom_" + "y" * 43}, "invalid_api_key", "wrong-x-api-key"),
    (lambda tenant: {"Authorization": "Bearer sk_master_test_wrong"}, "invalid_api_key", "near-master-key"),
    (lambda tenant: {"Authorization": f"Bearer {_revoked_key(tenant)}"}, "invalid_api_key", "revoked-key"),
    (lambda tenant: {"Authorization": f"Bearer {_expired_key(tenant)}"}, "invalid_api_key", "expired-key"),
    (lambda tenant: {"x-api-key": _inactive_tenant_key(tenant)}, "invalid_api_key", "inactive-tenant"),
]


def test_bad_key_is_401_and_goes_nowhere(post, provider, tenant_key, upstream, usage_events, subtests):
    for headers_for, code, name in BAD_KEYS:
        with subtests.test(name):
            response = post(chat(), headers=headers_for(tenant_key[0]))
            assert_envelope(response, 401, "authentication_error", code=code)
            assert upstream.chat_requests() == []
    assert usage_events(expect=0) == []


def test_auth_is_checked_before_the_body(post, provider, upstream, usage_events):
    response = post(content=b"not json at all", headers={"x-api-key": "nope"})
    assert_envelope(response, 401, "authentication_error")
    assert upstream.chat_requests() == [] and usage_events(expect=0) == []


@pytest.mark.parametrize("header", ["authorization", "x-api-key"])
def test_tenant_key_in_either_header_is_accepted(post, provider, tenant_key, upstream, usage_events, header):
    value = f"Bearer {tenant_key[2]}" if header == "authorization" else tenant_key[2]
    response = post(chat(), headers={header: value})
    assert response.status_code == 200, response.text
    [event] = usage_events(response.headers["x-request-id"])
    assert (event["tenant"], event["api_key_id"], event["status"]) == ("acme", tenant_key[1].id, 200)


def test_a_key_that_has_not_expired_yet_works(post, provider, tenant_key):
    from django.utils import timezone

    from accounting.tenants.services import do_create_api_key

    plaintext = do_create_api_key(tenant_key[0], expires_at=timezone.now() + timedelta(hours=1))[1]
    assert post(chat(), headers={"Authorization": f"Bearer {plaintext}"}).status_code == 200


@pytest.mark.parametrize("header", ["authorization", "x-api-key"])
def test_master_key_works_and_is_recorded_without_a_tenant(post, provider, upstream, usage_events, settings,
                                                           header):
    master = settings.GOMODEL_MASTER_KEY
    assert master
    value = f"Bearer {master}" if header == "authorization" else master
    response = post(chat(), headers={header: value})
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "Hello from the fake upstream!"
    [event] = usage_events(response.headers["x-request-id"])
    assert (event["tenant_id"], event["api_key_id"], event["api_key_prefix"]) == (None, None, "master")


def test_models_listing_needs_a_key(gateway, provider):
    response = httpx.get(f"{gateway}/v1/models")
    assert_envelope(response, 401, "authentication_error", code="missing_api_key")


# -- routes, methods, size ------------------------------------------------------------------------

def test_wrong_method_is_405_with_allow(gateway, tenant_key, upstream, usage_events):
    response = httpx.get(f"{gateway}/v1/chat/completions", headers={"Authorization": f"Bearer {tenant_key[2]}"})
    error = assert_envelope(response, 405, "invalid_request_error", code="method_not_allowed")
    assert response.headers["allow"] == "POST"
    assert "GET" in error["message"]
    response = httpx.delete(f"{gateway}/v1/models")
    assert response.status_code == 405 and response.headers["allow"] == "GET"
    assert upstream.chat_requests() == [] and usage_events(expect=0) == []


def test_unknown_route_under_v1_is_404_envelope(gateway, tenant_key, upstream, subtests):
    for method, path in [("POST", "/v1/completions"), ("GET", "/v1/nope"), ("GET", "/v1"),
                         ("POST", "/v1/chat/completions/extra")]:
        with subtests.test(f"{method} {path}"):
            response = httpx.request(method, f"{gateway}{path}", json=chat(),
                                     headers={"Authorization": f"Bearer {tenant_key[2]}"})
            error = assert_envelope(response, 404, "not_found_error", code="route_not_found")
            assert path in error["message"]
    assert upstream.chat_requests() == []


def test_trailing_slash_is_the_same_route(post, gateway, provider, tenant_key):
    response = httpx.post(f"{gateway}/v1/chat/completions/", json=chat(),
                          headers={"Authorization": f"Bearer {tenant_key[2]}"})
    assert response.status_code == 200, response.text


def test_body_over_the_limit_is_413(post, provider, upstream, usage_events, settings):
    settings.BODY_SIZE_LIMIT = 512
    small = post(chat())
    assert small.status_code == 200, small.text
    upstream.requests.clear()

    big = chat(messages=[{"role": "user", "content": "x" * 2000}])
    response = post(big)
    assert_envelope(response, 413, "invalid_request_error", code="request_too_large")
    assert "512" in response.json()["error"]["message"]
    assert upstream.chat_requests() == []
    assert [e["status"] for e in usage_events(expect=1)] == [200]  # only the small request's


def test_body_over_the_limit_without_content_length_is_413(post, provider, tenant_key, upstream, usage_events,
                                                           settings):
    settings.BODY_SIZE_LIMIT = 512

    def chunks():  # a generator body goes out chunked: the gateway must count what it reads
        for _ in range(10):
            yield b" " * 100
        yield orjson.dumps(chat())

    response = post(content=chunks(), headers={"content-type": "application/json",
                                               "Authorization": f"Bearer {tenant_key[2]}"})
    assert_envelope(response, 413, "invalid_request_error", code="request_too_large")
    assert upstream.chat_requests() == [] and usage_events(expect=0) == []


# -- 404: routing ----------------------------------------------------------------------------------

def test_unknown_model_is_404_model_not_found(post, provider, upstream, usage_events):
    response = post(chat("no-such-model"))
    error = assert_envelope(response, 404, "not_found_error", param="model", code="model_not_found")
    assert "no-such-model" in error["message"]
    assert upstream.chat_requests() == []
    assert usage_events(expect=0) == []


def test_provider_hint_naming_an_unconfigured_provider_is_404(post, provider, upstream, usage_events):
    response = post(chat(provider="anthropic"))
    error = assert_envelope(response, 404, "not_found_error", param="provider", code="provider_not_found")
    assert "anthropic" in error["message"]
    assert upstream.chat_requests() == [] and usage_events(expect=0) == []


def test_unconfigured_provider_prefix_is_an_unknown_model(post, provider, upstream):
    response = post(chat("groq/llama-3.3-70b-versatile"))
    assert_envelope(response, 404, "not_found_error", param="model", code="model_not_found")
    assert upstream.chat_requests() == []


@pytest.fixture
def openrouter(make_provider, upstream):
    """A second provider on the same fake upstream, told apart by its key."""
    return make_provider(name="openrouter", provider_type="openrouter", base_url=upstream.base_url,
                         api_key="sk-or-secret")


def test_provider_prefix_routes_and_strips_the_prefix(post, provider, openrouter, upstream, usage_events):
    response = post(chat("openrouter/meta-llama/llama-3.1-8b-instruct"))
    assert response.status_code == 200, response.text
    assert response.json()["provider"] == "openrouter"
    [sent] = upstream.chat_requests()
    assert sent["body"]["model"] == "meta-llama/llama-3.1-8b-instruct"
    assert sent["headers"]["authorization"] == "Bearer sk-or-secret"
    [event] = usage_events(response.headers["x-request-id"])
    assert (event["provider"], event["provider_type"], event["requested_model"], event["model"]) == (
        "openrouter", "openrouter", "openrouter/meta-llama/llama-3.1-8b-instruct", "meta-llama/llama-3.1-8b-instruct")


def test_provider_field_wins_over_a_prefix_and_is_stripped(post, provider, openrouter, upstream):
    # "openai/..." would route to the openai provider; the explicit field says openrouter.
    response = post(chat("openai/gpt-4o-mini", provider="openrouter"))
    assert response.status_code == 200, response.text
    assert response.json()["provider"] == "openrouter"
    [sent] = upstream.chat_requests()
    assert sent["headers"]["authorization"] == "Bearer sk-or-secret"
    assert sent["body"]["model"] == "openai/gpt-4o-mini"  # OpenRouter's own id for that model
    assert "provider" not in sent["body"]


def test_provider_field_with_its_own_prefix(post, provider, openrouter, upstream):
    response = post(chat("openrouter/gpt-4o-mini", provider="openrouter"))
    assert response.status_code == 200, response.text
    [sent] = upstream.chat_requests()
    assert sent["body"]["model"] == "gpt-4o-mini" and "provider" not in sent["body"]
    assert sent["headers"]["authorization"] == "Bearer sk-or-secret"


def test_bare_model_goes_to_the_first_provider_listing_it(post, provider, openrouter, upstream):
    response = post(chat("gpt-4o-mini"))
    assert response.json()["provider"] == "openai"
    assert upstream.chat_requests()[0]["headers"]["authorization"] == "Bearer sk-upstream-secret"


# -- upstream failures (non-streaming): each reached an upstream, so each is recorded once ----------

def test_upstream_429_keeps_retry_after(post, provider, upstream, usage_events):
    response = post(chat("fail-429"))
    error = assert_envelope(response, 429, "rate_limit_error", code="rate_limit_exceeded")
    assert response.headers["retry-after"] == "7"
    assert "Rate limit" in error["message"]
    assert len(upstream.chat_requests()) == 1
    [event] = usage_events(response.headers["x-request-id"])
    assert (event["status"], event["error_type"], event["usage_source"]) == (429, "rate_limit_error", "none")
    assert event["prompt_tokens"] == event["completion_tokens"] == 0


def test_upstream_429_through_the_sdk(gateway, provider, tenant_key):
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key=tenant_key[2], max_retries=0)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="fail-429", messages=HELLO)
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "7"


def test_upstream_400_passes_its_message_and_param(post, provider, upstream, usage_events):
    response = post(chat("fail-400", temperature=5))
    error = assert_envelope(response, 400, "invalid_request_error", param="temperature", code="invalid_value")
    assert error["message"] == "temperature is out of range"
    [event] = usage_events(response.headers["x-request-id"])
    assert (event["status"], event["error_type"]) == (400, "invalid_request_error")


def test_upstream_401_is_502_and_never_leaks_the_provider_key(post, provider, upstream, usage_events):
    response = post(chat("fail-401"))
    error = assert_envelope(response, 502, "provider_error", code="provider_auth_failed")
    assert "sk-upstream-secret" not in response.text
    assert "sk-up" not in error["message"]  # not even the upstream's masked echo of it
    assert "openai" in error["message"]
    [event] = usage_events(response.headers["x-request-id"])
    assert (event["status"], event["error_type"]) == (502, "provider_error")


def test_upstream_401_through_the_sdk_is_not_an_authentication_error(gateway, provider, tenant_key):
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key=tenant_key[2], max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="fail-401", messages=HELLO)
    assert caught.value.status_code == 502
    assert not isinstance(caught.value, openai.AuthenticationError)


def test_upstream_500_is_502(post, provider, upstream, usage_events):
    response = post(chat("fail-500"))
    error = assert_envelope(response, 502, "provider_error", code="upstream_error")
    assert "500" in error["message"] and "The server had an error" in error["message"]
    [event] = usage_events(response.headers["x-request-id"])
    assert (event["status"], event["error_type"]) == (502, "provider_error")


@pytest.mark.parametrize("stream", [False, True])
def test_unreachable_upstream_is_502(post, make_provider, upstream, usage_events, stream):
    make_provider(name="deadend", provider_type="openai", base_url=f"http://127.0.0.1:{closed_port()}/v1",
                  models="ghost-model")
    response = post(chat("ghost-model", stream=stream))
    error = assert_envelope(response, 502, "provider_error", code="upstream_unreachable")
    assert "deadend" in error["message"]
    assert upstream.chat_requests() == []
    [event] = usage_events(response.headers["x-request-id"])
    assert (event["status"], event["error_type"], event["provider"], event["stream"]) == (
        502, "provider_error", "deadend", stream)


def test_upstream_timeout_is_504(post, provider, upstream, usage_events, settings):
    assert settings.UPSTREAM_TIMEOUT == 3
    response = post(chat("slow"))
    error = assert_envelope(response, 504, "provider_error", code="upstream_timeout")
    assert "openai" in error["message"]
    [event] = usage_events(response.headers["x-request-id"])
    assert (event["status"], event["error_type"]) == (504, "provider_error")
    assert 2500 <= event["latency_ms"] < 9000


# -- streaming failures ----------------------------------------------------------------------------

def read_stream(gateway, key, body, max_lines=None):
    """POST a stream; returns (status, headers, the non-empty lines read)."""
    lines = []
    with httpx.stream("POST", f"{gateway}/v1/chat/completions", json=body, timeout=10.0,
                      headers={"Authorization": f"Bearer {key}"}) as response:
        for line in response.iter_lines():
            if line:
                lines.append(line)
            if max_lines is not None and len(lines) >= max_lines:
                break
        return response.status_code, response.headers, lines


@pytest.mark.parametrize("model", ["break-stream", "error-event"])
def test_stream_failing_midway_ends_with_an_error_event_and_no_done(gateway, provider, tenant_key, usage_events,
                                                                   model):
    status, headers, lines = read_stream(gateway, tenant_key[2], chat(model, stream=True))
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    assert "data: [DONE]" not in lines
    assert all(line.startswith("data: ") for line in lines)
    chunks = [orjson.loads(line[6:]) for line in lines]
    *relayed, last = chunks
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in relayed)
    assert text == "Hello from"  # the two pieces sent before the failure
    assert set(last) == {"error"}
    error = last["error"]
    assert set(error) == {"type", "message", "param", "code"}
    assert error["type"] == "provider_error" and error["param"] is None and error["code"]
    assert "openai" in error["message"]
    if model == "error-event":
        assert "overloaded" in error["message"]

    [event] = usage_events(headers["x-request-id"])
    assert (event["status"], event["error_type"], event["stream"]) == (502, "provider_error", True)
    assert event["usage_source"] == "estimated"
    assert event["completion_tokens"] > 0 and event["prompt_tokens"] > 0
    assert event["total_tokens"] == event["prompt_tokens"] + event["completion_tokens"]


@pytest.mark.parametrize("model", ["error-event", "break-stream"])
def test_sdk_stream_raises_on_the_error_event(gateway, provider, tenant_key, usage_events, model):
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key=tenant_key[2], max_retries=0)
    stream = client.chat.completions.create(model=model, messages=HELLO, stream=True)
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk)
    assert "failed mid-stream" in caught.value.message or "broke mid-stream" in caught.value.message
    assert "".join(c.choices[0].delta.content or "" for c in received if c.choices) == "Hello from"
    [event] = usage_events()
    assert (event["status"], event["usage_source"]) == (502, "estimated")


def test_stream_upstream_error_before_streaming_is_a_json_error(gateway, provider, tenant_key, upstream,
                                                                usage_events):
    with httpx.stream("POST", f"{gateway}/v1/chat/completions", json=chat("fail-429", stream=True),
                      headers={"Authorization": f"Bearer {tenant_key[2]}"}) as response:
        response.read()
    assert_envelope(response, 429, "rate_limit_error")
    assert response.headers["retry-after"] == "7"
    [event] = usage_events(response.headers["x-request-id"])
    assert (event["status"], event["stream"]) == (429, True)


def test_stream_timeout_before_the_first_byte_is_504(gateway, provider, tenant_key, usage_events):
    with httpx.stream("POST", f"{gateway}/v1/chat/completions", json=chat("slow", stream=True), timeout=10.0,
                      headers={"Authorization": f"Bearer {tenant_key[2]}"}) as response:
        response.read()
    assert_envelope(response, 504, "provider_error", code="upstream_timeout")
    [event] = usage_events(response.headers["x-request-id"])
    assert (event["status"], event["error_type"]) == (504, "provider_error")


def test_client_hanging_up_mid_stream_is_recorded_once_as_499(gateway, provider, tenant_key, usage_events):
    status, headers, lines = read_stream(gateway, tenant_key[2], chat("long-stream", stream=True), max_lines=5)
    assert status == 200 and len(lines) == 5
    [event] = usage_events(headers["x-request-id"], timeout=5.0)
    assert (event["status"], event["error_type"], event["stream"]) == (499, "client_disconnected", True)
    assert event["usage_source"] == "estimated"
    assert event["completion_tokens"] > 0
    # Far fewer than the 300 pieces the upstream would have sent: the relay stopped.
    assert event["completion_tokens"] < 150
