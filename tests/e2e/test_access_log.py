"""The access log: one line per /v1 call (served or refused), the billed figures, JSON with LOG_FORMAT=json,
never a credential."""

import time

import httpx
import orjson
import pytest

from gomodel.gateway import metrics

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def access_lines(monkeypatch, settings):
    settings.ACCESS_LOG = True  # off for the rest of the suite (pytest.ini): its lines would fill the output
    batches: list[bytes] = []
    monkeypatch.setattr(metrics.ACCESS, "sink", batches.append)
    return batches


def line_of(batches, request_id, timeout=3.0) -> list[bytes]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [line for batch in list(batches) for line in batch.splitlines() if request_id.encode() in line]
        if found:
            return found
        time.sleep(0.02)
    return []


def test_one_json_line_per_call_served_or_refused_without_credentials(gateway, provider, tenant_key, usage_events,
                                                                      access_lines, settings):
    settings.LOG_FORMAT = "json"
    secret = tenant_key[2]
    served = httpx.post(f"{gateway}/v1/chat/completions", headers={"Authorization": f"Bearer {secret}"},
                        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}, timeout=10)
    assert served.status_code == 200
    [event] = usage_events(served.headers["x-request-id"])
    [raw] = line_of(access_lines, served.headers["x-request-id"])
    line = orjson.loads(raw)
    assert (line["logger"], line["tenant"], line["endpoint"], line["provider"], line["model"], line["status"]) == (
        "gomodel.access", "acme", "/v1/chat/completions", "openai", "gpt-4o-mini", 200)
    assert (line["prompt_tokens"], line["completion_tokens"], line["key_prefix"]) == (
        event["prompt_tokens"], event["completion_tokens"], event["api_key_prefix"])

    refused = httpx.post(f"{gateway}/v1/chat/completions", headers={"Authorization": "Bearer sk_gom_wrong_key"},
                         json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}, timeout=10)
    assert refused.status_code == 401
    [raw] = line_of(access_lines, refused.headers["x-request-id"])
    assert (orjson.loads(raw)["status"], orjson.loads(raw)["error_type"]) == (401, "authentication_error")

    written = b"".join(access_lines)
    for secret_text in (secret, "sk_gom_wrong_key", "sk-upstream-secret"):
        assert secret_text.encode() not in written


def test_text_lines_and_the_switch(gateway, provider, tenant_key, access_lines, settings):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
    headers = {"Authorization": f"Bearer {tenant_key[2]}"}
    response = httpx.post(f"{gateway}/v1/chat/completions", headers=headers, json=body, timeout=10)
    [raw] = line_of(access_lines, response.headers["x-request-id"])
    assert b" INFO gomodel.access request_id=" in raw and b" status=200 " in raw
    settings.ACCESS_LOG = False
    response = httpx.post(f"{gateway}/v1/chat/completions", headers=headers, json=body, timeout=10)
    assert response.status_code == 200
    assert line_of(access_lines, response.headers["x-request-id"], timeout=0.3) == []


def test_json_lines_carry_labels_user_ttft_and_the_cache_result(gateway, provider, tenant_key, usage_events,
                                                                access_lines, settings):
    settings.LOG_FORMAT = "json"
    tenant, key, secret = tenant_key
    tenant.cache_mode = "exact"
    tenant.save()
    headers = {"Authorization": f"Bearer {secret}", "x-gomodel-labels": "team:search,env:prod",
               "x-gomodel-user": "alice"}
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "temperature": 0}
    lines = []
    for _ in range(2):  # a miss, then the exact hit
        response = httpx.post(f"{gateway}/v1/chat/completions", headers=headers, json=body, timeout=10)
        assert response.status_code == 200, response.text
        [raw] = line_of(access_lines, response.headers["x-request-id"])
        lines.append(orjson.loads(raw))
    streamed = httpx.post(f"{gateway}/v1/chat/completions", headers={**headers, "cache-control": "no-cache, no-store"},
                          json={**body, "stream": True}, timeout=10)
    assert streamed.status_code == 200
    [raw] = line_of(access_lines, streamed.headers["x-request-id"])
    lines.append(orjson.loads(raw))
    assert [line["cache"] for line in lines] == ["miss", "exact", "bypass"]
    for line in lines:
        assert line["labels"] == {"team": "search", "env": "prod"} and line["user"] == "alice"
        assert line["key_prefix"] == key.prefix and "ttft_ms" in line
    assert lines[2]["ttft_ms"] is not None and lines[2]["ttft_ms"] > 0
    written = b"".join(access_lines)
    assert secret.encode() not in written and b"sk-upstream-secret" not in written and b'"Hi"' not in written

    tenant.user_rpm_limit = 1  # alice's next call is refused before any upstream: its line still names her
    tenant.save()
    for _ in range(2):  # the first is within the minute's one request
        refused = httpx.post(f"{gateway}/v1/chat/completions", headers=headers, json=body, timeout=10)
    assert refused.status_code == 429, refused.text
    [raw] = line_of(access_lines, refused.headers["x-request-id"])
    assert (orjson.loads(raw)["user"], orjson.loads(raw)["labels"]) == ("alice", {"team": "search", "env": "prod"})
    tenant.user_rpm_limit = None
    tenant.save()

    settings.LOG_FORMAT = "text"
    response = httpx.post(f"{gateway}/v1/chat/completions", headers=headers, json=body, timeout=10)
    [raw] = line_of(access_lines, response.headers["x-request-id"])
    assert b" labels=team:search,env:prod " in raw and b" user=alice" in raw and b" cache=exact" in raw
