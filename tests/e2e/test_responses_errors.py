"""Every error of /v1/responses in the gateway's OpenAI envelope, through the openai SDK and raw HTTP:
bad keys, bad bodies, unknown models and response ids, upstream failures, a stream that breaks."""

import httpx
import openai
import pytest

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def client(gateway, tenant_key):
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key=tenant_key[2], max_retries=0)


@pytest.fixture
def groq(make_provider, upstream):
    return make_provider(name="groq", provider_type="groq", base_url=upstream.base_url, api_key="gsk-upstream")


def generation_requests(upstream):
    """What reached the upstream's generation routes (its /models listing may be read any time)."""
    return upstream.responses_requests() + upstream.chat_requests()


def _post(gateway, key, body, **kwargs):
    return httpx.post(f"{gateway}/v1/responses", headers={"Authorization": f"Bearer {key}"}, json=body, timeout=10,
                      **kwargs)


def _envelope(response, status, kind, code=None, param=None):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"type", "message", "param", "code"} and error["message"]
    assert error["type"] == kind
    if code is not None:
        assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    return error


def test_missing_and_wrong_keys_are_401(gateway, provider):
    response = httpx.post(f"{gateway}/v1/responses", json={"model": "gpt-4o-mini", "input": "Hi"}, timeout=10)
    _envelope(response, 401, "authentication_error", "missing_api_key")
    for method, path in (("GET", "/v1/responses/resp_x"), ("DELETE", "/v1/responses/resp_x"),
                         ("GET", "/v1/responses/resp_x/input_items")):
        response = httpx.request(method, f"{gateway}{path}", headers={"Authorization": "Bearer sk_gom_wrong"},
                                 timeout=10)
        _envelope(response, 401, "authentication_error", "invalid_api_key")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{gateway}/v1", api_key="sk_gom_wrong", max_retries=0).responses.create(
            model="gpt-4o-mini", input="Hi")


@pytest.mark.parametrize("body, param", [
    ({"input": "Hi"}, "model"),
    ({"model": "gpt-4o-mini"}, "input"),
    ({"model": "gpt-4o-mini", "input": 5}, "input"),
    ({"model": "gpt-4o-mini", "input": []}, "input"),
    ({"model": "gpt-4o-mini", "input": [{"type": "message", "role": "robot", "content": "x"}]}, "input[0].role"),
    ({"model": "gpt-4o-mini", "input": [{"role": "user", "content": [{"type": "input_text"}]}]},
     "input[0].content[0].text"),
    ({"model": "gpt-4o-mini", "input": [{"role": "user", "content": [{"type": "input_image"}]}]},
     "input[0].content[0].image_url"),
    ({"model": "gpt-4o-mini", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
     "input[0].call_id"),
    ({"model": "gpt-4o-mini", "input": [{"type": "function_call_output", "call_id": "c"}]}, "input[0].output"),
    ({"model": "gpt-4o-mini", "input": "Hi", "tools": [{"type": "function"}]}, "tools[0].name"),
    ({"model": "gpt-4o-mini", "input": "Hi", "tool_choice": "sometimes"}, "tool_choice"),
    ({"model": "gpt-4o-mini", "input": "Hi", "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": "gpt-4o-mini", "input": "Hi", "temperature": 3}, "temperature"),
    ({"model": "gpt-4o-mini", "input": "Hi", "top_p": "high"}, "top_p"),
    ({"model": "gpt-4o-mini", "input": "Hi", "reasoning": {"effort": "extreme"}}, "reasoning.effort"),
    ({"model": "gpt-4o-mini", "input": "Hi", "text": {"format": {"type": "json_schema", "name": "x"}}},
     "text.format.schema"),
    ({"model": "gpt-4o-mini", "input": "Hi", "stream": "yes"}, "stream"),
    ({"model": "gpt-4o-mini", "input": "Hi", "store": 1}, "store"),
    ({"model": "gpt-4o-mini", "input": "Hi", "metadata": {"k": 1}}, "metadata"),
    ({"model": "gpt-4o-mini", "input": "Hi", "previous_response_id": 7}, "previous_response_id"),
    ({"model": "gpt-4o-mini", "input": "Hi", "background": True}, "background"),
])
def test_invalid_bodies_are_400_naming_the_field_and_reach_no_upstream(gateway, provider, upstream, tenant_key,
                                                                      usage_events, body, param):
    response = _post(gateway, tenant_key[2], body)
    _envelope(response, 400, "invalid_request_error", param=param)
    assert generation_requests(upstream) == []
    assert usage_events(None, expect=0, timeout=0.1) == []


def test_invalid_json_is_400(gateway, provider, tenant_key):
    response = httpx.post(f"{gateway}/v1/responses", headers={"Authorization": f"Bearer {tenant_key[2]}"},
                          content=b"{not json", timeout=10)
    _envelope(response, 400, "invalid_request_error", "invalid_json")


def test_what_only_the_responses_api_can_do_is_400_on_a_translated_target(client, groq, upstream, usage_events):
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="groq/gpt-4o-mini", input="Hi", tools=[{"type": "file_search",
                                                                             "vector_store_ids": ["vs_1"]}])
    assert caught.value.body["param"] == "tools[0]" and caught.value.body["code"] == "unsupported_value"
    assert generation_requests(upstream) == [] and usage_events(None, expect=0, timeout=0.1) == []


def test_unknown_model_is_404(client, provider):
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model="no-such-model", input="Hi")
    assert caught.value.body["type"] == "not_found_error" and caught.value.body["code"] == "model_not_found"


def test_unknown_response_ids_are_404(client, gateway, tenant_key, provider, upstream):
    for call in (lambda: client.responses.retrieve("resp_missing"), lambda: client.responses.delete("resp_missing"),
                 lambda: client.responses.input_items.list("resp_missing")):
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert (caught.value.body["type"], caught.value.body["code"]) == ("not_found_error", "response_not_found")
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model="gpt-4o-mini", input="Hi", previous_response_id="resp_missing")
    assert caught.value.body["param"] == "previous_response_id"
    assert generation_requests(upstream) == []
    response = httpx.get(f"{gateway}/v1/responses/resp_x/other", timeout=10,
                         headers={"Authorization": f"Bearer {tenant_key[2]}"})
    _envelope(response, 404, "not_found_error", "route_not_found")
    response = httpx.put(f"{gateway}/v1/responses/resp_x", timeout=10,
                         headers={"Authorization": f"Bearer {tenant_key[2]}"})
    _envelope(response, 405, "invalid_request_error", "method_not_allowed")
    assert response.headers["allow"] == "GET, DELETE"


def test_input_items_paging_parameters_are_checked(client, gateway, tenant_key, provider):
    created = client.responses.create(model="gpt-4o-mini", input="Hi")
    headers = {"Authorization": f"Bearer {tenant_key[2]}"}
    for query, param in (("limit=0", "limit"), ("limit=abc", "limit"), ("order=up", "order"), ("after=nope", "after")):
        response = httpx.get(f"{gateway}/v1/responses/{created.id}/input_items?{query}", headers=headers, timeout=10)
        _envelope(response, 400, "invalid_request_error", param=param)


@pytest.mark.parametrize("model", ["gpt-4o-mini", "groq/gpt-4o-mini"])
def test_upstream_5xx_is_502_and_recorded(client, provider, groq, upstream, usage_events, model, settings):
    settings.RETRY_MAX = 0
    target = model.replace("gpt-4o-mini", "fail-500")
    with pytest.raises(openai.InternalServerError) as caught:
        client.responses.create(model=target, input="Hi")
    assert caught.value.status_code == 502
    assert (caught.value.body["type"], caught.value.body["code"]) == ("provider_error", "upstream_error")
    [event] = usage_events(None)
    assert (event["endpoint"], event["status"], event["error_type"]) == ("/v1/responses", 502, "provider_error")


def test_upstream_4xx_is_passed_on(client, provider):
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="fail-400", input="Hi")
    assert caught.value.body["param"] == "temperature"


@pytest.mark.parametrize("model", ["break-stream", "groq/break-stream"])
def test_a_stream_that_breaks_ends_in_response_failed(client, provider, groq, upstream, usage_events, model):
    with client.responses.stream(model=model, input="Hi") as stream:
        events = list(stream)
    assert events[0].type == "response.created"
    assert events[-1].type == "response.failed"
    failed = events[-1].response
    assert failed.status == "failed" and failed.error.code in ("upstream_stream_broken", "upstream_stream_incomplete")
    assert failed.id == events[0].response.id
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert [e.delta for e in events if e.type == "response.output_text.delta"] == ["Hello", " from"]
    [event] = usage_events(None)
    assert (event["status"], event["stream"], event["usage_source"]) == (502, True, "estimated")
    assert event["completion_tokens"] > 0
    with pytest.raises(openai.NotFoundError):  # a failed response is not stored
        client.responses.retrieve(failed.id)


def test_a_client_hanging_up_mid_stream_is_recorded_once_as_499_and_not_stored(gateway, groq, upstream, tenant_key,
                                                                               usage_events, client):
    body = {"model": "groq/long-stream", "input": "Hi", "stream": True}
    with httpx.stream("POST", f"{gateway}/v1/responses", json=body, timeout=10,
                      headers={"Authorization": f"Bearer {tenant_key[2]}"}) as response:
        lines = []
        for line in response.iter_lines():
            if line.startswith("data: "):
                lines.append(line)
            if len(lines) == 8:
                break
        request_id = response.headers["x-request-id"]
    response_id = httpx.Response(200, content=lines[0][len("data: "):]).json()["response"]["id"]
    [event] = usage_events(request_id, timeout=5.0)
    assert (event["endpoint"], event["status"], event["error_type"]) == ("/v1/responses", 499, "client_disconnected")
    assert event["usage_source"] == "estimated" and 0 < event["completion_tokens"] < 150
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response_id)


def test_a_conversation_larger_than_the_body_limit_is_not_continued(client, provider, upstream, settings):
    first = client.responses.create(model="gpt-4o-mini", input="x" * 5000)
    settings.BODY_SIZE_LIMIT = 4096
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="gpt-4o-mini", previous_response_id=first.id, input="And?")
    assert (caught.value.body["param"], caught.value.body["code"]) == ("previous_response_id", "context_too_large")
    assert len(generation_requests(upstream)) == 1


def test_a_native_upstreams_own_response_failed_is_relayed_and_recorded(client, provider, upstream, usage_events):
    with client.responses.stream(model="error-event", input="Hi") as stream:
        events = list(stream)
    assert events[-1].type == "response.failed"
    assert events[-1].response.error.code == "server_error"
    assert events[-1].response.id == events[0].response.id != "resp_fake0123456789"
    [event] = usage_events(None)
    assert (event["status"], event["error_type"], event["usage_source"]) == (502, "provider_error", "estimated")
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(events[-1].response.id)
