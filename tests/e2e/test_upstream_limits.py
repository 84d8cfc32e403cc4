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
