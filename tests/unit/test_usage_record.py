"""gomodel.gateway.usage_record: the one usage event a /v1 request becomes, however it ended."""

import time
from types import SimpleNamespace

from accounting.usage.estimate import estimate_prompt_tokens, estimate_text_tokens
from gomodel.gateway.auth import MASTER, Principal
from gomodel.gateway.usage_record import UsageRecord
from providers.base import Target, Usage

TARGET = Target(id=3, name="groq", provider_type="groq", wire="openai_compat", base_url="http://x/v1", api_key="k")
PRINCIPAL = Principal(tenant_id=1, tenant_slug="acme", key_id=9, key_prefix="sk_gom_…abcd")
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello to the world."}]


def record(stream=False, principal=PRINCIPAL, model="llama-3.3-70b-versatile") -> UsageRecord:
    req = SimpleNamespace(request_id="req_abc", auth=principal, started=time.perf_counter())
    return UsageRecord(req, TARGET, f"groq/{model}", model, "/v1/chat/completions", stream, MESSAGES)


def test_reported_usage():
    rec = record()
    rec.usage = Usage(prompt_tokens=20, completion_tokens=5, total_tokens=25, cached_tokens=4, reasoning_tokens=1)
    event = rec.event()
    assert {k: getattr(event, k) for k in ("request_id", "tenant_id", "tenant", "api_key_id", "api_key_prefix",
                                           "provider_id", "provider", "provider_type", "requested_model", "model",
                                           "endpoint", "status", "error_type", "stream", "usage_source")} == {
        "request_id": "req_abc", "tenant_id": 1, "tenant": "acme", "api_key_id": 9, "api_key_prefix": "sk_gom_…abcd",
        "provider_id": 3, "provider": "groq", "provider_type": "groq",
        "requested_model": "groq/llama-3.3-70b-versatile", "model": "llama-3.3-70b-versatile",
        "endpoint": "/v1/chat/completions", "status": 200, "error_type": None, "stream": False,
        "usage_source": "reported"}
    assert (event.prompt_tokens, event.completion_tokens, event.total_tokens, event.cached_tokens,
            event.reasoning_tokens) == (20, 5, 25, 4, 1)
    assert event.latency_ms >= 0 and event.ttft_ms is None


def test_a_success_without_reported_usage_is_estimated():
    rec = record()
    rec.relay({"choices": [{"delta": {"content": "Hello, world! Nice to meet you."}}]})
    event = rec.event()
    assert event.usage_source == "estimated"
    assert event.completion_tokens == estimate_text_tokens("Hello, world! Nice to meet you.", rec.model) > 0
    assert event.prompt_tokens == estimate_prompt_tokens(MESSAGES, rec.model) > 0
    assert event.total_tokens == event.prompt_tokens + event.completion_tokens


def test_a_broken_stream_bills_what_was_relayed():
    rec = record(stream=True)
    rec.relay({"choices": [{"delta": {"role": "assistant", "content": ""}}]})
    rec.relay({"choices": [{"delta": {"reasoning_content": "Thinking about it."}}]})
    rec.relay({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"name": "get_weather",
                                                                               "arguments": '{"city":'}}]}}]})
    rec.relay({"choices": [{"delta": {"content": "Hello"}}], "usage": None})
    rec.status, rec.error_type = 502, "provider_error"
    event = rec.event()
    assert rec.relayed == ["", "Thinking about it.", "get_weather", '{"city":', "Hello"]
    assert (event.status, event.error_type, event.stream, event.usage_source) == (
        502, "provider_error", True, "estimated")
    assert event.completion_tokens == estimate_text_tokens("".join(rec.relayed), rec.model)


def test_a_failure_that_generated_nothing_has_no_usage():
    rec = record()
    rec.status, rec.error_type = 429, "rate_limit_error"
    event = rec.event()
    assert event.usage_source == "none"
    assert (event.prompt_tokens, event.completion_tokens, event.total_tokens) == (0, 0, 0)


def test_first_byte_is_measured_once():
    rec = record(stream=True)
    rec.first_byte()
    first = rec.ttft_ms
    time.sleep(0.01)
    rec.first_byte()
    assert rec.ttft_ms == first and first >= 0
    assert rec.event().ttft_ms == first


def test_relay_ignores_malformed_chunks():
    rec = record()
    rec.relay({"choices": ["x", {"delta": "text"}, {"delta": {"content": 5, "tool_calls": ["bad"]}}]})
    rec.relay({})
    assert rec.relayed == []


def test_master_key_events_have_no_tenant():
    event = record(principal=MASTER).event()
    assert (event.tenant_id, event.tenant, event.api_key_id, event.api_key_prefix) == (
        None, None, None, "master")


def test_attempts_are_listed_in_order():
    rec = record()
    rec.attempt(TARGET, "m", 503, "upstream_error")
    rec.attempt(TARGET, "m", 200, None)
    assert rec.event().attempts == [{"provider": "groq", "model": "m", "status": 503, "error": "upstream_error"},
                                       {"provider": "groq", "model": "m", "status": 200, "error": None}]
