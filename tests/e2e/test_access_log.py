"""The access log: one line per /v1 call (served or refused), the billed figures, never a credential."""

import logging

import httpx
import orjson
import pytest

from gomodel.log_format import JsonFormatter

pytestmark = [pytest.mark.e2e]


class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def access_lines():
    handler = Lines()
    logger = logging.getLogger("gomodel.access")
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)


def lines_of(records, request_id):
    return [r for r in records if r.fields["request_id"] == request_id]


def test_one_line_per_call_served_or_refused_as_json_without_credentials(gateway, provider, tenant_key,
                                                                         usage_events, access_lines):
    secret = tenant_key[2]
    served = httpx.post(f"{gateway}/v1/chat/completions", headers={"Authorization": f"Bearer {secret}"},
                        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}, timeout=10)
    assert served.status_code == 200
    [event] = usage_events(served.headers["x-request-id"])
    [record] = lines_of(access_lines, served.headers["x-request-id"])
    fields = record.fields
    assert (fields["tenant"], fields["endpoint"], fields["provider"], fields["model"], fields["status"]) == (
        "acme", "/v1/chat/completions", "openai", "gpt-4o-mini", 200)
    assert (fields["prompt_tokens"], fields["completion_tokens"]) == (event["prompt_tokens"],
                                                                      event["completion_tokens"])
    assert fields["key_prefix"] == event["api_key_prefix"]

    refused = httpx.post(f"{gateway}/v1/chat/completions", headers={"Authorization": "Bearer sk_gom_wrong_key"},
                         json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}, timeout=10)
    assert refused.status_code == 401
    [line] = lines_of(access_lines, refused.headers["x-request-id"])
    assert (line.fields["status"], line.fields["error_type"]) == (401, "authentication_error")

    for record in access_lines:
        rendered = JsonFormatter().format(record)
        parsed = orjson.loads(rendered)  # one JSON object a line
        assert parsed["logger"] == "gomodel.access" and parsed["request_id"] == record.fields["request_id"]
        for secret_text in (secret, "sk_gom_wrong_key", "sk-upstream-secret"):
            assert secret_text not in rendered and secret_text not in record.getMessage()


def test_the_access_log_can_be_turned_off(gateway, provider, tenant_key, access_lines, settings):
    settings.ACCESS_LOG = False
    response = httpx.post(f"{gateway}/v1/chat/completions", headers={"Authorization": f"Bearer {tenant_key[2]}"},
                          json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}, timeout=10)
    assert response.status_code == 200
    assert lines_of(access_lines, response.headers["x-request-id"]) == []
