"""What an upstream sends is bounded and scrubbed before a tenant sees it (issue #12, items 5 and 13):
error text without credentials or host names; bodies, SSE lines, streams and the wait for a pooled
connection all capped, a breach answered with the documented 502/504 envelope."""

import time

import httpx
import orjson
import pytest

pytestmark = [pytest.mark.e2e]

HELLO = [{"role": "user", "content": "Hello"}]
SECRET = "sk-upstream-secret"  # the provider fixture's key


@pytest.fixture
def post(gateway, tenant_key):
    def send(body, timeout=30.0):
        return httpx.post(f"{gateway}/v1/chat/completions", content=orjson.dumps(body), timeout=timeout,
                          headers={"Authorization": f"Bearer {tenant_key[2]}", "content-type": "application/json"})

    return send


def stream_lines(gateway, tenant_key, body, timeout=30.0) -> tuple[int, list[bytes]]:
    lines = []
    with httpx.stream("POST", f"{gateway}/v1/chat/completions", json={**body, "stream": True}, timeout=timeout,
                      headers={"Authorization": f"Bearer {tenant_key[2]}"}) as response:
        for line in response.iter_lines():
            if line:
                lines.append(line)
        return response.status_code, lines


def error_event(lines) -> dict:
    assert lines[-1].startswith("data: {") and "[DONE]" not in lines[-1], lines[-3:]
    return orjson.loads(lines[-1][len("data: "):])["error"]


# -- item 13: upstream error text ------------------------------------------------------------------

def test_plain_text_upstream_error_is_relayed_scrubbed(post, provider, upstream, usage_events):
    response = post({"model": "openai/fail-text", "messages": HELLO})
    assert response.status_code == 502
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("provider_error", "upstream_error")
    message = error["message"]
    assert "502 Bad Gateway at [upstream host]" in message  # the text is still useful
    for leaked in (SECRET, "Bearer", "127.0.0.1", "ZXhhbXBs", "sk-proj"):
        assert leaked not in message, (leaked, message)
    # The upstream did see (and echo) them: the scrubbing is what kept them out.
    assert upstream.chat_requests()[-1]["headers"]["authorization"] == f"Bearer {SECRET}"


def test_mid_stream_upstream_error_is_scrubbed(gateway, provider, tenant_key, upstream):
    status, lines = stream_lines(gateway, tenant_key, {"model": "openai/error-event-secrets", "messages": HELLO})
    error = error_event(lines)
    assert status == 200 and error["type"] == "provider_error"
    assert "denied for [redacted]" in error["message"]
    assert SECRET not in error["message"] and "127.0.0.1" not in error["message"]


# -- item 5: bounded upstream inputs ----------------------------------------------------------------

def test_an_oversized_upstream_answer_is_502(post, provider, upstream, usage_events, settings):
    settings.UPSTREAM_MAX_BODY_BYTES = 1024 * 1024
    response = post({"model": "openai/huge-body", "messages": HELLO, "huge_mib": 4})
    assert response.status_code == 502
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("provider_error", "upstream_response_too_large")
    assert len(upstream.chat_requests()) == 1  # not retried: it would be as big again
    [event] = usage_events(response.headers["x-request-id"])
    assert (event["status"], event["error_type"]) == (502, "provider_error")
    settings.UPSTREAM_MAX_BODY_BYTES = 8 * 1024 * 1024  # under the cap the same answer is read
    response = post({"model": "openai/huge-body", "messages": HELLO, "huge_mib": 4})
    assert response.json().get("error", {}).get("code") != "upstream_response_too_large", response.text[:300]


def test_an_endless_stream_line_ends_the_stream_with_an_error_event(gateway, provider, tenant_key, usage_events,
                                                                    settings):
    settings.UPSTREAM_MAX_SSE_EVENT_BYTES = 1024 * 1024
    status, lines = stream_lines(gateway, tenant_key, {"model": "openai/long-line", "messages": HELLO})
    error = error_event(lines)
    assert status == 200 and (error["type"], error["code"]) == ("provider_error", "upstream_response_too_large")
    [event] = usage_events()
    assert (event["status"], event["error_type"]) == (502, "provider_error")


def test_a_stream_past_the_deadline_ends_with_a_504_error_event(gateway, provider, tenant_key, usage_events,
                                                                 settings):
    settings.UPSTREAM_DEADLINE = 1.0  # the fake trickles a chunk every 50 ms for 10 s
    started = time.perf_counter()
    status, lines = stream_lines(gateway, tenant_key, {"model": "openai/trickle", "messages": HELLO})
    assert time.perf_counter() - started < 4.0
    error = error_event(lines)
    assert status == 200 and (error["type"], error["code"]) == ("provider_error", "upstream_deadline")
    assert len(lines) > 5  # what came before the deadline was relayed
    [event] = usage_events()
    assert (event["status"], event["error_type"], event["usage_source"]) == (504, "provider_error", "estimated")


def test_a_non_streaming_call_past_the_deadline_is_504(post, provider, upstream, usage_events, settings):
    settings.UPSTREAM_DEADLINE = 1.0
    settings.RETRY_MAX = 0
    response = post({"model": "slow", "messages": HELLO})  # the fake sleeps 10 s before answering
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"
