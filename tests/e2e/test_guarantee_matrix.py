"""Every guarantee the README makes for a /v1 call, run on every endpoint it applies to (the one pipeline:
gomodel/gateway/pipeline/). A new endpoint joins by adding a row to ROWS.

Rows reach the fake upstreams through the one pipeline: "groq" is an OpenAI-format provider (Messages and
Responses are translated to chat there), "anthropic" and "openai" are native targets for Messages and
Responses. Each guarantee asserts what the client saw, what reached the upstream, and the usage events
(exactly one per call that reached an upstream, none for a refusal)."""

import concurrent.futures
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

import httpx
import orjson
import pytest

pytestmark = [pytest.mark.e2e]

PRICE_IN, PRICE_OUT = Decimal("1"), Decimal("10")  # USD per million tokens, for every groq model (admin price)
UPSTREAM_KEY = "sk-upstream-secret-0123456789"


@dataclass(frozen=True)
class Row:
    name: str
    path: str
    stream: bool
    provider: str = "groq"
    anthropic_envelope: bool = False
    passthrough: bool = False  # /p/{provider}/…: the body in the provider's own format, its own model name
    upload: str | None = None  # a multipart endpoint: the form field its file goes in

    def body(self, model: str, text: str = "Hi", max_tokens: int | None = None) -> dict:
        if not self.passthrough:
            model = f"{self.provider}/{model}"
        if self.path == "/v1/embeddings":
            return {"model": model, "input": text}
        if self.path == "/v1/images/generations" or self.upload:
            return {"model": model, "prompt": text, **({"stream": "true"} if self.stream else {})}
        if self.path == "/v1/messages":
            return {"model": model, "max_tokens": max_tokens or 64, "stream": self.stream,
                    "messages": [{"role": "user", "content": text}]}
        if self.path == "/v1/responses":
            body = {"model": model, "input": text, "stream": self.stream, "store": False}
            if max_tokens is not None:
                body["max_output_tokens"] = max_tokens
            return body
        body = {"model": model, "stream": self.stream, "messages": [{"role": "user", "content": text}]}
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if self.passthrough and self.stream:
            body["stream_options"] = {"include_usage": True}  # a passthrough client asks for its usage itself
        return body

    def content(self, body: dict) -> dict:
        """httpx's arguments for the body: a form with a file for an upload, else JSON."""
        return {"data": body, "files": {self.upload: ("in.bin", UPLOAD)}} if self.upload else {"json": body}

    @property
    def endpoint(self) -> str:
        """The usage event's endpoint: a passthrough call is named by its provider."""
        return "/p/" + self.provider if self.passthrough else self.path

    def headers(self, key: str) -> dict:
        if self.anthropic_envelope:
            return {"x-api-key": key, "anthropic-version": "2023-06-01"}
        return {"Authorization": f"Bearer {key}"}

    def error(self, response: httpx.Response) -> dict:
        """The error envelope as {type, code, message} (Anthropic's has no code)."""
        data = response.json()
        if self.anthropic_envelope:
            assert data["type"] == "error", data
            return {"type": data["error"]["type"], "code": None, "message": data["error"]["message"]}
        return data["error"]


CHAT_JSON = Row("chat", "/v1/chat/completions", False)
CHAT_STREAM = Row("chat-stream", "/v1/chat/completions", True)
EMBEDDINGS = Row("embeddings", "/v1/embeddings", False)
MESSAGES_JSON = Row("messages", "/v1/messages", False, anthropic_envelope=True)
MESSAGES_STREAM = Row("messages-stream", "/v1/messages", True, anthropic_envelope=True)
RESPONSES_JSON = Row("responses", "/v1/responses", False)
RESPONSES_STREAM = Row("responses-stream", "/v1/responses", True)
# Native targets: the upstream's own stream relayed (its error events are where unscrubbed text came from).
MESSAGES_NATIVE_STREAM = Row("messages-native-stream", "/v1/messages", True, "anthropic", anthropic_envelope=True)
RESPONSES_NATIVE_STREAM = Row("responses-native-stream", "/v1/responses", True, "openai")

# Provider-native passthrough to an OpenAI-format provider: its chat completions as they are.
PASSTHROUGH_JSON = Row("passthrough", "/p/groq/v1/chat/completions", False, passthrough=True)
PASSTHROUGH_STREAM = Row("passthrough-stream", "/p/groq/v1/chat/completions", True, passthrough=True)

IMAGES = Row("images", "/v1/images/generations", False)
# Multipart uploads: the form's `prompt` is what a budget and TPM reserve for.
TRANSCRIPTIONS = Row("transcriptions", "/v1/audio/transcriptions", False, upload="file")
IMAGE_EDITS = Row("image-edits", "/v1/images/edits", False, upload="image")
TRANSCRIPTIONS_STREAM = Row("transcriptions-stream", "/v1/audio/transcriptions", True, upload="file")
UPLOAD = b"RIFF" + bytes(range(256)) * 64

ROWS = [CHAT_JSON, CHAT_STREAM, EMBEDDINGS, MESSAGES_JSON, MESSAGES_STREAM, RESPONSES_JSON, RESPONSES_STREAM,
        PASSTHROUGH_JSON, PASSTHROUGH_STREAM, IMAGES, TRANSCRIPTIONS, TRANSCRIPTIONS_STREAM, IMAGE_EDITS]
STREAMS = [row for row in ROWS if row.stream]
ids = [row.name for row in ROWS]
stream_ids = [row.name for row in STREAMS]


@dataclass
class Streamed:
    status: int
    request_id: str
    text: str
    error: dict | None  # the terminal error event as {type, code, message}
    completed: bool  # the protocol's own "complete" end ([DONE], message_stop, response.completed)
    headers: httpx.Headers | None = None


def read_stream(row: Row, response: httpx.Response, stop_after: int | None = None) -> Streamed:
    """Read an SSE answer in `row`'s protocol (at most `stop_after` content pieces, then hang up)."""
    text, error, completed, pieces = [], None, False, 0
    event = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line[7:]
            continue
        if not line.startswith("data: "):
            continue
        if line == "data: [DONE]":
            completed = True
            continue
        payload = orjson.loads(line[6:])
        piece = None
        if row.path.endswith("/chat/completions"):
            if "error" in payload:
                error = payload["error"]
            else:
                piece = "".join(c["delta"].get("content") or "" for c in payload["choices"])
        elif row.path == "/v1/messages":
            if event == "error":
                error = {"type": payload["error"]["type"], "code": None, "message": payload["error"]["message"]}
            elif event == "content_block_delta" and payload["delta"]["type"] == "text_delta":
                piece = payload["delta"]["text"]
            elif event == "message_stop":
                completed = True
        elif row.upload:  # a transcription's events, or the gateway's `error` event
            if "error" in payload:
                error = payload["error"]
            elif payload["type"] == "transcript.text.delta":
                piece = payload["delta"]
            elif payload["type"] == "transcript.text.done":
                completed = True
        else:
            kind = payload["type"]
            if kind == "response.output_text.delta":
                piece = payload["delta"]
            elif kind == "response.failed":
                failure = payload["response"]["error"]
                error = {"type": None, "code": failure["code"], "message": failure["message"]}
            elif kind == "response.completed":
                completed = True
        if piece:
            text.append(piece)
            pieces += 1
            if stop_after is not None and pieces >= stop_after:
                break
    return Streamed(response.status_code, response.headers["x-request-id"], "".join(text), error, completed,
                    response.headers)


def call(gateway: str, row: Row, key: str, body: dict, timeout: float = 20,
         headers: dict | None = None) -> httpx.Response | Streamed:
    """One call; a stream that starts (200) is read to its end, anything else is returned as it came."""
    url = gateway + row.path
    headers = {**row.headers(key), **(headers or {})}
    content = row.content(body)
    if not row.stream:
        return httpx.post(url, headers=headers, timeout=timeout, **content)
    with httpx.stream("POST", url, headers=headers, timeout=timeout, **content) as response:
        if response.status_code != 200:
            response.read()
            return response
        return read_stream(row, response)


def request_id(answer) -> str:
    return answer.request_id if isinstance(answer, Streamed) else answer.headers["x-request-id"]


def ok(answer) -> bool:
    if isinstance(answer, Streamed):
        return answer.error is None and answer.completed
    return answer.status_code == 200


@pytest.fixture
def targets(make_provider, upstream, anthropic_server, transactional_db):
    from accounting.models import ModelPrice

    make_provider(name="groq", provider_type="groq", base_url=upstream.base_url, api_key=UPSTREAM_KEY)
    make_provider(name="openai", provider_type="openai", base_url=upstream.base_url, api_key=UPSTREAM_KEY)
    make_provider(name="anthropic", provider_type="anthropic", base_url=anthropic_server.base_url,
                  api_key=UPSTREAM_KEY)
    for provider in ("groq", "openai", "anthropic"):
        ModelPrice.objects.create(provider=provider, model_pattern="*", input_per_million=PRICE_IN,
                                  output_per_million=PRICE_OUT, valid_from=datetime(2020, 1, 1, tzinfo=timezone.utc))
    anthropic_server.requests.clear()
    return {"groq": upstream, "openai": upstream, "anthropic": anthropic_server}


@pytest.fixture
def make_key(transactional_db):
    from accounting.models import Tenant
    from accounting.tenants.services import do_create_api_key, do_create_tenant

    def make(**fields) -> str:
        tenant = Tenant.objects.filter(slug="matrix").first() or do_create_tenant("matrix")
        key, plaintext = do_create_api_key(tenant, name="matrix")
        for name, value in fields.items():
            setattr(key, name, value)
        key.save()
        return plaintext

    return make


def upstream_calls(targets, row: Row) -> int:
    server = targets[row.provider]
    return len([r for r in server.requests if r["method"] == "POST"])


def assert_refused(row: Row, response, status: int, kind: str, code: str | None, text: str = ""):
    assert not isinstance(response, Streamed), f"{row.name}: expected a refusal before the stream started"
    assert response.status_code == status, response.text
    error = row.error(response)
    anthropic_kind = {"rate_limit_error": "rate_limit_error", "permission_error": "permission_error",
                      "provider_error": "api_error"}
    assert error["type"] == (anthropic_kind.get(kind, kind) if row.anthropic_envelope else kind), error
    if not row.anthropic_envelope:
        assert error["code"] == code, error
    assert text in error["message"], error
    return error


# -- budgets ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("row", ROWS, ids=ids)
def test_a_prompt_that_alone_costs_more_than_is_left_is_refused_before_any_upstream_call(
        gateway, targets, make_key, usage_events, row):
    key = make_key(budget_usd=Decimal("0.0005"), budget_period="daily")
    before = upstream_calls(targets, row)
    answer = call(gateway, row, key, row.body("gpt-4o-mini", "word " * 1000))  # ~1,250 tokens: ~$0.00125
    assert_refused(row, answer, 429, "rate_limit_error", "budget_exceeded", "prompt alone")
    assert upstream_calls(targets, row) == before
    assert usage_events(request_id(answer), expect=0) == []


@pytest.mark.parametrize("row", STREAMS, ids=stream_ids)
def test_a_budget_cuts_a_stream_and_bills_what_the_client_got(gateway, targets, make_key, usage_events, row):
    key = make_key(budget_usd=Decimal("0.001"), budget_period="daily")
    answer = call(gateway, row, key, row.body("long-stream", max_tokens=32))  # the upstream ignores max_tokens
    assert isinstance(answer, Streamed) and answer.status == 200
    assert answer.error is not None and not answer.completed, answer
    assert "budget" in answer.error["message"]
    if row.anthropic_envelope:
        assert answer.error["type"] == "rate_limit_error"
    else:
        assert answer.error["code"] == "budget_exceeded"
    [event] = usage_events(answer.request_id)
    assert (event["status"], event["usage_source"]) == (429, "estimated")
    assert event["completion_tokens"] == -(-len(answer.text) // 4) > 0  # what the client got, chars/4
    assert Decimal("0.001") <= Decimal(event["cost"]) <= Decimal("0.0012")


@pytest.mark.parametrize("row", ROWS, ids=ids)
def test_parallel_calls_overspend_a_budget_by_at_most_one_calls_cost(gateway, targets, make_key, usage_events, row):
    budget = Decimal("0.0003")  # one call: 11 prompt + 6 completion tokens (~$0.00007); embeddings far less
    if row.path == "/v1/embeddings":
        budget = Decimal("0.00001")  # one embeddings call: 3 tokens, $0.000003
    key = make_key(budget_usd=budget, budget_period="daily")
    body = row.body("gpt-4o-mini", "hello there", max_tokens=10)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: call(gateway, row, key, body), range(24)))
    served = [a for a in answers if isinstance(a, Streamed) or a.status_code == 200]  # a stream may be cut
    refused = [a for a in answers if not isinstance(a, Streamed) and a.status_code == 429]
    assert served and refused, [getattr(a, "status_code", a) for a in answers]
    assert len(served) + len(refused) == len(answers)
    costs = [Decimal(usage_events(request_id(a))[0]["cost"]) for a in served]
    assert sum(costs) <= budget + max(costs), (sum(costs), budget, len(served))
    for answer in refused:
        assert usage_events(request_id(answer), expect=0, timeout=0.2) == []


# -- rate limits and allow-lists -------------------------------------------------------------------------

@pytest.mark.parametrize("row", ROWS, ids=ids)
def test_rpm_and_tpm_limits_answer_429_with_their_headers(gateway, targets, make_key, usage_events, row):
    key = make_key(rpm_limit=1)
    first = call(gateway, row, key, row.body("gpt-4o-mini"))
    assert ok(first)
    second = call(gateway, row, key, row.body("gpt-4o-mini"))
    assert_refused(row, second, 429, "rate_limit_error", "rate_limit_exceeded", "requests-per-minute")
    assert second.headers["x-ratelimit-limit-requests"] == "1"
    assert second.headers["x-ratelimit-remaining-requests"] == "0"
    assert int(second.headers["retry-after"]) >= 1
    assert usage_events(request_id(second), expect=0) == []

    # TPM: each call reserves its prompt estimate plus max_tokens until it ends: ten at once cannot all fit.
    key = make_key(tpm_limit=30)
    body = row.body("gpt-4o-mini", "x" * 60, max_tokens=10)
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: call(gateway, row, key, body), range(10)))
    refused = [a for a in answers if not ok(a)]
    assert refused and any(ok(a) for a in answers), answers
    assert_refused(row, refused[0], 429, "rate_limit_error", "rate_limit_exceeded", "tokens-per-minute")
    assert refused[0].headers["x-ratelimit-limit-tokens"] == "30"
    assert refused[0].headers["x-ratelimit-remaining-tokens"].isdigit()


@pytest.mark.parametrize("row", ROWS, ids=ids)
def test_a_provider_quota_answers_429_naming_it_and_never_forwards(gateway, targets, make_key, row):
    from accounting.provider_configs.services import do_update_provider
    from gomodel.gateway.runtime import invalidate_local
    from providers.models import ProviderConfig

    do_update_provider("test", ProviderConfig.objects.get(name=row.provider), {"rpm_limit": 1})
    invalidate_local("providers")
    key = make_key()  # no limit of its own: the provider account's quota is everyone's
    assert ok(call(gateway, row, key, row.body("gpt-4o-mini")))
    before = upstream_calls(targets, row)
    refused = call(gateway, row, key, row.body("gpt-4o-mini"))
    assert_refused(row, refused, 429, "rate_limit_error", "provider_quota_exceeded", f"provider {row.provider}")
    assert int(refused.headers["retry-after"]) >= 1
    assert upstream_calls(targets, row) == before


@pytest.mark.parametrize("row", ROWS, ids=ids)
def test_a_concurrency_limit_answers_429_while_a_call_is_in_flight(gateway, targets, make_key, row):
    key = make_key(concurrency_limit=1)
    server = targets[row.provider]
    before = upstream_calls(targets, row)
    holder = threading.Thread(target=call, args=(gateway, row, key, row.body(
        "long-stream" if row.stream else "slow")))
    holder.start()
    deadline = time.monotonic() + 5
    while upstream_calls(targets, row) == before and time.monotonic() < deadline:
        time.sleep(0.01)
    refused = call(gateway, row, key, row.body("gpt-4o-mini"))
    assert_refused(row, refused, 429, "rate_limit_error", "rate_limit_exceeded", "concurrent-requests")
    holder.join(timeout=15)
    assert server is not None


@pytest.mark.parametrize("row", ROWS, ids=ids)
def test_a_model_outside_the_allow_list_is_403_and_never_forwarded(gateway, targets, make_key, usage_events, row):
    key = make_key(allowed_models=["groq/some-other-model"])
    before = upstream_calls(targets, row)
    answer = call(gateway, row, key, row.body("gpt-4o-mini"))
    assert_refused(row, answer, 403, "permission_error", "model_not_allowed")
    assert upstream_calls(targets, row) == before
    assert usage_events(request_id(answer), expect=0) == []


# -- upstream failures -----------------------------------------------------------------------------------

@pytest.mark.parametrize("row", ROWS, ids=ids)
def test_the_deadline_is_a_504(gateway, targets, make_key, usage_events, settings, row):
    settings.UPSTREAM_DEADLINE = 1.0
    key = make_key()
    answer = call(gateway, row, key, row.body("trickle" if row.stream else "slow"))
    if row.stream:
        assert answer.error is not None and not answer.completed
        if not row.anthropic_envelope:
            assert answer.error["code"] == "upstream_deadline"
    else:
        assert_refused(row, answer, 504, "provider_error", "upstream_timeout")
    [event] = usage_events(request_id(answer))
    assert event["status"] == 504


@pytest.mark.parametrize("row", ROWS + [MESSAGES_NATIVE_STREAM, RESPONSES_NATIVE_STREAM],
                         ids=ids + ["messages-native-stream", "responses-native-stream"])
def test_upstream_error_text_is_scrubbed(gateway, targets, make_key, usage_events, row):
    key = make_key()
    model = ("claude-error-secrets" if row.provider == "anthropic" else "error-event-secrets") if row.stream \
        else "fail-text"
    answer = call(gateway, row, key, row.body(model))
    host = targets[row.provider].base_url.split("//", 1)[1].split("/", 1)[0]
    if row.stream:
        assert answer.error is not None and not answer.completed, answer
        message = answer.error["message"]
    else:
        assert answer.status_code == 502
        message = row.error(answer)["message"]
    assert UPSTREAM_KEY not in message and "sk-upstream" not in message, message
    assert host not in message, message
    assert "[redacted]" in message or "[upstream host]" in message, message
    [event] = usage_events(request_id(answer))
    assert event["status"] == 502


@pytest.mark.parametrize("row", STREAMS, ids=stream_ids)
def test_an_oversized_stream_event_ends_the_stream(gateway, targets, make_key, usage_events, settings, row):
    settings.UPSTREAM_MAX_SSE_EVENT_BYTES = 1024 * 1024
    key = make_key()
    answer = call(gateway, row, key, row.body("long-line"))
    assert answer.error is not None and not answer.completed
    if not row.anthropic_envelope:
        assert answer.error["code"] == "upstream_response_too_large"
    [event] = usage_events(answer.request_id)
    assert event["status"] == 502


@pytest.mark.parametrize("row", ROWS, ids=ids)
@pytest.mark.parametrize("model, status, kind, code", [
    ("fail-429", 429, "rate_limit_error", "rate_limit_exceeded"),
    ("fail-500", 502, "provider_error", "upstream_error"),
])
def test_upstream_429_and_5xx_are_mapped(gateway, targets, make_key, usage_events, row, model, status, kind, code):
    key = make_key()
    answer = call(gateway, row, key, row.body(model))
    assert_refused(row, answer, status, kind, code)
    if status == 429:
        assert answer.headers["retry-after"] == "7"
    [event] = usage_events(request_id(answer))
    assert event["status"] == status


# -- hang-ups and the one event --------------------------------------------------------------------------

@pytest.mark.parametrize("row", STREAMS, ids=stream_ids)
def test_a_client_hang_up_is_billed_on_an_estimate_of_what_was_sent(gateway, targets, make_key, usage_events, row):
    key = make_key()
    with httpx.stream("POST", gateway + row.path, headers=row.headers(key), **row.content(row.body("long-stream")),
                      timeout=20) as response:
        assert response.status_code == 200
        streamed = read_stream(row, response, stop_after=5)
    [event] = usage_events(streamed.request_id, timeout=5)
    assert (event["status"], event["error_type"], event["usage_source"]) == (499, "client_disconnected", "estimated")
    assert event["completion_tokens"] >= -(-len(streamed.text) // 4) > 0


@pytest.mark.parametrize("row", ROWS, ids=ids)
def test_a_served_call_is_exactly_one_usage_event(gateway, targets, make_key, usage_events, row):
    key = make_key()
    answer = call(gateway, row, key, row.body("gpt-4o-mini"))
    assert ok(answer)
    [event] = usage_events(request_id(answer))
    assert (event["endpoint"], event["stream"], event["status"]) == (row.endpoint, row.stream, 200)
    assert event["provider"] == row.provider and event["usage_source"] == "reported"


# -- attribution -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("row", ROWS, ids=ids)
def test_labels_and_the_end_user_are_on_the_event(gateway, targets, make_key, usage_events, row):
    key = make_key(labels={"team": "core", "env": "prod"})
    answer = call(gateway, row, key, row.body("gpt-4o-mini"),
                  headers={"x-gomodel-labels": "env:test,feature:matrix", "x-gomodel-user": "u-7"})
    assert ok(answer)
    [event] = usage_events(request_id(answer))
    assert event["labels"] == {"team": "core", "env": "test", "feature": "matrix"} and event["user"] == "u-7"


@pytest.mark.parametrize("row", ROWS, ids=ids)
def test_labels_out_of_bounds_are_a_400_never_forwarded_nor_recorded(gateway, targets, make_key, usage_events, row):
    key = make_key()
    refusals = [({"x-gomodel-labels": ",".join(f"l{i}:v" for i in range(17))}, "invalid_labels", "16"),
                ({"x-gomodel-user": "u" * 65}, "invalid_user", "64")]
    for headers, code, text in refusals:
        response = call(gateway, row, key, row.body("gpt-4o-mini"), headers=headers)
        assert_refused(row, response, 400, "invalid_request_error", code, text)
    assert upstream_calls(targets, row) == 0
    assert usage_events(None, expect=0, timeout=0.2) == []


# -- the response cache ----------------------------------------------------------------------------------

def content(row: Row, answer) -> object:
    """What a client was answered, without what differs per request (ids, times)."""
    if isinstance(answer, Streamed):
        return answer.text
    data = answer.json()
    if row.path == "/v1/embeddings":
        return [item["embedding"] for item in data["data"]]
    if row.path == "/v1/messages":
        return data["content"]
    if row.path == "/v1/responses":
        return [[part.get("text") for part in item.get("content") or ()] for item in data["output"]]
    return [choice["message"] for choice in data["choices"]]


NATIVE = [Row("messages-native", "/v1/messages", False, "anthropic", anthropic_envelope=True), MESSAGES_NATIVE_STREAM,
          Row("responses-native", "/v1/responses", False, "openai"), RESPONSES_NATIVE_STREAM]


# The response cache is opt-in per protocol (Exchange.cacheable): passthrough and media are never cached.
CACHED = [CHAT_JSON, CHAT_STREAM, EMBEDDINGS, MESSAGES_JSON, MESSAGES_STREAM, RESPONSES_JSON, RESPONSES_STREAM]
UNCACHED = [row for row in ROWS if row not in CACHED]


@pytest.mark.parametrize("row", UNCACHED, ids=[row.name for row in UNCACHED])
def test_a_protocol_that_is_not_cacheable_always_goes_upstream(gateway, targets, make_key, row):
    key = make_key(cache_mode="exact")
    body = row.body("gpt-4o-mini", "never cached")
    before = upstream_calls(targets, row)
    first = call(gateway, row, key, body)
    second = call(gateway, row, key, body)
    assert ok(first) and ok(second), (first, second)
    assert upstream_calls(targets, row) == before + 2
    assert "x-gomodel-cache" not in first.headers and "x-gomodel-cache" not in second.headers


@pytest.mark.parametrize("row", CACHED + NATIVE, ids=[row.name for row in CACHED + NATIVE])
def test_an_identical_call_is_answered_from_the_cache_at_no_cost(gateway, targets, make_key, usage_events, row):
    key = make_key(cache_mode="exact")
    body = row.body("gpt-4o-mini", "cache me")
    before = upstream_calls(targets, row)
    miss = call(gateway, row, key, body)
    hit = call(gateway, row, key, body)
    assert ok(miss) and ok(hit), (miss, hit)
    assert upstream_calls(targets, row) == before + 1  # the hit never reached the upstream
    assert (miss.headers["x-gomodel-cache"], hit.headers["x-gomodel-cache"]) == ("miss", "hit-exact")
    assert content(row, hit) == content(row, miss) and content(row, miss)
    assert request_id(hit) != request_id(miss)
    [first] = usage_events(request_id(miss))
    [second] = usage_events(request_id(hit))
    assert first["cache"] is None and first["cost_source"] is None  # priced by the drain, as any call
    assert (second["cache"], second["cost"], second["cost_source"], second["status"]) == ("exact", "0", "cache", 200)
    assert (second["endpoint"], second["stream"], second["provider"]) == (row.path, row.stream, row.provider)
    assert second["attempts"] == []
    for field in ("prompt_tokens", "completion_tokens", "total_tokens", "usage_source"):
        assert second[field] == first[field], field  # tokens as served
