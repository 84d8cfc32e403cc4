"""Traces (gomodel/gateway/tracing.py): the gateway exports OTLP/HTTP to a receiver this test runs, for calls made
through the openai SDK against the fake upstream. The session's gateway is in-process: the tests switch tracing on
through the setting and the environment, and the tracer provider is made on the first traced call and shut down
after each test."""

import time

import openai
import pytest

from tests.otlp_receiver import OTLPReceiver

pytestmark = [pytest.mark.e2e]

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
CLIENT_HEADERS = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01", "tracestate": "congo=t61rcWkgMzE"}
SERVER, CLIENT = 2, 3  # the protobuf's SpanKind values


@pytest.fixture(scope="module")
def receiver():
    server = OTLPReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def traced(receiver, monkeypatch, settings):
    from gomodel.gateway import tracing

    tracing.shutdown()  # the next traced call makes a provider that reads the environment below
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    settings.OTEL_TRACING = True
    settings.OTEL_GENAI_CAPTURE_CONTENT = False

    def sdk_encoder(spans):
        raise AssertionError("the gateway's spans go through gomodel/gateway/otlp_encoder.py")

    monkeypatch.setattr("opentelemetry.exporter.otlp.proto.http.trace_exporter.encode_spans", sdk_encoder)
    receiver.clear()
    yield receiver
    tracing.shutdown()


@pytest.fixture
def client(gateway, provider, tenant_key):
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key=tenant_key[2], max_retries=0)


def call_spans(receiver, request_id, attempts=1, timeout=10.0):
    """The call's span and its attempts' spans, once the exporter has sent them."""
    from gomodel.gateway import tracing

    deadline = time.monotonic() + timeout
    while True:
        tracing.flush()
        with receiver.lock:
            spans = list(receiver.spans)
        calls = [s for s in spans if s["attributes"].get("gomodel.request_id") == request_id]
        if calls:
            children = sorted((s for s in spans if s["parent_span_id"] == calls[0]["span_id"]),
                              key=lambda s: s["attributes"]["gomodel.attempt"])
            if len(children) >= attempts:
                return calls[0], children
        assert time.monotonic() < deadline, spans
        time.sleep(0.02)


def assert_no_secret(receiver, tenant_key):
    exported = b"".join(receiver.raw)
    for secret in (tenant_key[2], "sk-upstream-secret", "Bearer"):
        assert secret.encode() not in exported


def test_a_chat_call_is_one_span_with_the_genai_attributes_continuing_the_clients_trace(
        traced, client, upstream, tenant_key):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}], max_tokens=50, temperature=0.2,
        extra_headers=CLIENT_HEADERS)
    assert raw.parse().choices[0].message.content == "Hello from the fake upstream!"
    call, [attempt] = call_spans(traced, raw.headers["x-request-id"])

    assert call["name"] == "chat gpt-4o-mini" and call["kind"] == SERVER
    assert (call["trace_id"], call["parent_span_id"]) == (TRACE_ID, PARENT_ID)
    attributes = call["attributes"]
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == attributes["gen_ai.response.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (11, 6)
    assert attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert (attributes["gen_ai.request.max_tokens"], attributes["gen_ai.request.temperature"]) == (50, 0.2)
    assert attributes["http.response.status_code"] == 200
    assert attributes["gomodel.tenant"] == "acme"
    assert "error.type" not in attributes
    assert "gen_ai.input.messages" not in attributes and "gen_ai.output.messages" not in attributes
    assert call["resource"]["service.name"] == "gomodel"

    assert attempt["kind"] == CLIENT and attempt["trace_id"] == TRACE_ID
    assert attempt["attributes"]["http.response.status_code"] == 200
    assert attempt["attributes"]["gen_ai.provider.name"] == "openai"
    assert attempt["trace_state"] == "congo=t61rcWkgMzE"
    [sent] = upstream.chat_requests()
    assert sent["headers"]["traceparent"] == f"00-{TRACE_ID}-{attempt['span_id']}-01"
    assert sent["headers"]["tracestate"] == "congo=t61rcWkgMzE"
    assert_no_secret(traced, tenant_key)


def test_a_stream_has_its_time_to_first_token(traced, client, upstream, tenant_key):
    stream = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}], stream=True,
        extra_headers=CLIENT_HEADERS)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream.parse() if chunk.choices)
    assert text == "Hello from the fake upstream!"
    call, [attempt] = call_spans(traced, stream.headers["x-request-id"])
    attributes = call["attributes"]
    assert call["trace_id"] == TRACE_ID and attributes["gomodel.stream"] is True
    assert attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert attributes["gen_ai.usage.output_tokens"] > 0
    assert 0 < attributes["gen_ai.server.time_to_first_token"] < 10
    [first] = [e for e in call["events"] if e["name"] == "gen_ai.first_token"]
    assert call["start"] < first["time"] <= call["end"]
    assert upstream.chat_requests()[0]["headers"]["traceparent"].split("-")[1:3] == [TRACE_ID, attempt["span_id"]]
    assert "gen_ai.output.messages" not in attributes
    assert_no_secret(traced, tenant_key)


def test_each_upstream_attempt_is_a_child_span(traced, client, upstream, tenant_key):
    upstream.flaky_failures = 1  # 503 once, then the retry answers
    raw = client.chat.completions.with_raw_response.create(model="flaky", messages=[{"role": "user", "content": "x"}])
    raw.parse()
    call, [first, second] = call_spans(traced, raw.headers["x-request-id"], attempts=2)
    assert first["attributes"]["http.response.status_code"] == 502  # the 503, as the gateway maps it
    assert first["attributes"]["error.type"] and first["status"] == 2  # STATUS_CODE_ERROR
    assert second["attributes"]["http.response.status_code"] == 200 and "error.type" not in second["attributes"]
    assert first["trace_id"] == second["trace_id"] == call["trace_id"]  # a trace of the gateway's own
    sent = [r["headers"]["traceparent"] for r in upstream.chat_requests()]
    assert [s.split("-")[2] for s in sent] == [first["span_id"], second["span_id"]]
    assert call["attributes"]["http.response.status_code"] == 200


def test_a_failed_call_names_its_error(traced, client, upstream):
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="fail-400", messages=[{"role": "user", "content": "x"}])
    call, [attempt] = call_spans(traced, caught.value.response.headers["x-request-id"])
    assert call["attributes"]["error.type"] == "invalid_request_error"
    assert call["attributes"]["http.response.status_code"] == 400
    assert attempt["attributes"]["http.response.status_code"] == 400


def test_content_is_captured_only_when_asked(traced, client, upstream, settings, tenant_key):
    settings.OTEL_GENAI_CAPTURE_CONTENT = True
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "system", "content": "Be brief."},
                                       {"role": "user", "content": "Hello"}])
    raw.parse()
    stream = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi there"}], stream=True)
    list(stream.parse())
    import orjson

    def text(role, content):
        return {"role": role, "parts": [{"type": "text", "content": content}]}

    for request_id, prompt in ((raw.headers["x-request-id"], [text("system", "Be brief."), text("user", "Hello")]),
                               (stream.headers["x-request-id"], [text("user", "Hi there")])):
        call, _ = call_spans(traced, request_id)
        assert orjson.loads(call["attributes"]["gen_ai.input.messages"]) == prompt
        assert orjson.loads(call["attributes"]["gen_ai.output.messages"]) == [
            {"role": "assistant", "parts": [{"type": "text", "content": "Hello from the fake upstream!"}],
             "finish_reason": "stop"}]
    assert_no_secret(traced, tenant_key)


def test_off_nothing_is_made_and_nothing_forwarded(client, upstream, settings):
    from gomodel.gateway import tracing

    tracing.shutdown()
    settings.OTEL_TRACING = False
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
                                   extra_headers=CLIENT_HEADERS)
    assert tracing._provider is None
    assert "traceparent" not in upstream.chat_requests()[0]["headers"]


def test_failover_to_another_provider_is_a_second_attempt(traced, client, make_provider, upstream, settings):
    from providers.models import ModelAlias

    settings.RETRY_MAX = 0
    make_provider(name="primary", provider_type="openai", base_url=f"http://127.0.0.1:{upstream.port}/a/v1")
    make_provider(name="backup", provider_type="groq", base_url=f"http://127.0.0.1:{upstream.port}/b/v1",
                  api_key="gsk-backup")
    ModelAlias.objects.create(name="resilient", targets=[{"target": "primary/fail-500", "weight": 5},
                                                         {"target": "backup/gpt-4o-mini", "weight": 1}])
    raw = client.chat.completions.with_raw_response.create(model="resilient",
                                                           messages=[{"role": "user", "content": "x"}])
    assert raw.parse().provider == "backup"
    call, [first, second] = call_spans(traced, raw.headers["x-request-id"], attempts=2)
    assert (first["attributes"]["gomodel.provider"], first["attributes"]["gen_ai.request.model"]) == (
        "primary", "fail-500")
    assert first["attributes"]["http.response.status_code"] == 502 and first["attributes"]["error.type"]
    assert (second["attributes"]["gomodel.provider"], second["attributes"]["gen_ai.provider.name"]) == (
        "backup", "groq")
    assert call["name"] == "chat resilient"
    assert (call["attributes"]["gomodel.provider"], call["attributes"]["gen_ai.response.model"]) == (
        "backup", "gpt-4o-mini")
    assert b"gsk-backup" not in b"".join(traced.raw)


def test_embeddings_and_messages_are_traced_by_the_same_pipeline(traced, gateway, client, upstream, tenant_key):
    import httpx

    raw = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input="hello")
    call, [_] = call_spans(traced, raw.headers["x-request-id"])
    assert call["name"] == "embeddings text-embedding-3-small"
    assert call["attributes"]["gen_ai.operation.name"] == "embeddings"
    assert call["attributes"]["gen_ai.usage.input_tokens"] > 0

    response = httpx.post(f"{gateway}/v1/messages", headers={"x-api-key": tenant_key[2], **CLIENT_HEADERS},
                          json={"model": "gpt-4o-mini", "max_tokens": 64,
                                "messages": [{"role": "user", "content": "Hello"}]})
    assert response.status_code == 200, response.text
    call, [attempt] = call_spans(traced, response.headers["x-request-id"])
    assert call["name"] == "chat gpt-4o-mini" and call["trace_id"] == TRACE_ID
    assert call["attributes"]["http.route"] == "/v1/messages"
    assert call["attributes"]["gen_ai.request.max_tokens"] == 64
    assert call["attributes"]["gen_ai.response.finish_reasons"] == ["end_turn"]
    assert upstream.requests[-1]["headers"]["traceparent"].split("-")[2] == attempt["span_id"]


def test_an_unsampled_trace_is_continued_but_not_exported(traced, client, upstream):
    """The default sampler follows the client's decision (parentbased_always_on): flags 00 → no span, yet the
    upstream still gets the trace's context."""
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
                                   extra_headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-00"})
    from gomodel.gateway import tracing

    tracing.flush()
    sent = upstream.chat_requests()[0]["headers"]["traceparent"]
    assert sent.startswith(f"00-{TRACE_ID}-") and sent.endswith("-00")
    assert traced.spans == []


def test_a_call_refused_by_its_allow_list_is_a_span_with_its_403(traced, client, upstream, tenant_key):
    key = tenant_key[1]
    key.allowed_models = ["openai/tool-model"]
    key.save()
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
                                       extra_headers=CLIENT_HEADERS)
    call, attempts = call_spans(traced, caught.value.response.headers["x-request-id"], attempts=0)
    assert attempts == [] and upstream.chat_requests() == []
    assert call["trace_id"] == TRACE_ID and call["status"] == 2
    assert call["attributes"]["http.response.status_code"] == 403
    assert call["attributes"]["error.type"] == caught.value.body["type"]


def test_a_failing_trace_never_costs_the_call_its_answer(traced, client, upstream, monkeypatch):
    from gomodel.gateway import tracing

    def broken(target):
        raise RuntimeError("a bug in tracing")

    monkeypatch.setattr(tracing, "provider_name", broken)  # the attempt's span and the call's end both use it
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert completion.choices[0].message.content == "Hello from the fake upstream!"
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
                                            stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Hello from the fake upstream!"


def test_a_rate_limited_call_and_a_circuit_open_skip(traced, client, upstream, make_provider, tenant_key, settings):
    key = tenant_key[1]
    key.rpm_limit = 1
    key.save()
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    call, attempts = call_spans(traced, caught.value.response.headers["x-request-id"], attempts=0)
    assert attempts == [] and call["attributes"]["http.response.status_code"] == 429
    assert call["attributes"]["error.type"] == "rate_limit_error"

    key.rpm_limit = None
    key.save()
    from gomodel.gateway.runtime import invalidate_local

    invalidate_local("keys")
    settings.RETRY_MAX = 0
    make_provider(name="primary", provider_type="openai", base_url=f"http://127.0.0.1:{upstream.port}/a/v1")
    for _ in range(5):  # five consecutive failures open primary's circuit
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(model="primary/fail-500", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="primary/gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert caught.value.body["code"] == "circuit_open"
    call, [skipped] = call_spans(traced, caught.value.response.headers["x-request-id"])
    assert skipped["attributes"]["error.type"] == "circuit_open" and skipped["status"] == 2
    assert "http.response.status_code" not in skipped["attributes"]
    assert call["attributes"]["http.response.status_code"] == 502
