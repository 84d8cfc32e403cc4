"""Prompt-cache planning through the gateway: what each provider format receives, per failover target."""

import httpx
import pytest

from gomodel.gateway.runtime import invalidate_local
from tests.e2e import test_guarantee_matrix as matrix

pytestmark = [pytest.mark.e2e]
targets, make_key = matrix.targets, matrix.make_key
LONG = "You are a careful assistant. " * 200


def messages_body(model: str) -> dict:
    return {"model": model, "max_tokens": 32, "system": LONG, "messages": [{"role": "user", "content": "hi"}]}


def post(gateway, key, path, body):
    return httpx.post(gateway + path, json=body, timeout=20,
                      headers={"Authorization": f"Bearer {key}", "anthropic-version": "2023-06-01"})


def test_anthropic_gets_breakpoints_openai_a_key_and_neither_leaks_on_failover(gateway, targets, make_key,
                                                                               upstream, anthropic_server, settings):
    settings.FAILOVER_RULES_JSON = '{"anthropic/claude-overloaded": ["openai/gpt-4o-mini", "groq/gpt-4o-mini"]}'
    invalidate_local("providers")
    key = make_key()
    answer = post(gateway, key, "/v1/messages", messages_body("anthropic/claude-overloaded"))
    assert answer.status_code == 200, answer.text
    [to_anthropic] = anthropic_server.message_requests()
    assert to_anthropic["body"]["system"][-1]["cache_control"] == {"type": "ephemeral"}
    [to_openai] = upstream.chat_requests()  # the failover target, another format: translated, no cache_control
    assert "cache_control" not in str(to_openai["body"])
    assert to_openai["body"]["prompt_cache_key"].startswith("gm-")


def test_other_openai_format_providers_get_nothing_and_client_directives_win(gateway, targets, make_key, upstream):
    key = make_key()
    chat = {"model": "groq/gpt-4o-mini", "messages": [{"role": "system", "content": LONG},
                                                      {"role": "user", "content": "hi"}]}
    assert post(gateway, key, "/v1/chat/completions", chat).status_code == 200
    own = {**chat, "model": "openai/gpt-4o-mini", "prompt_cache_key": "client-chosen"}
    assert post(gateway, key, "/v1/chat/completions", own).status_code == 200
    to_groq, to_openai = upstream.chat_requests()
    assert "prompt_cache_key" not in to_groq["body"]
    assert to_openai["body"]["prompt_cache_key"] == "client-chosen"


def test_planning_can_be_turned_off(gateway, targets, make_key, anthropic_server, settings):
    settings.PROMPT_CACHE_PLANNING = False
    key = make_key()
    assert post(gateway, key, "/v1/messages", messages_body("anthropic/claude-sonnet-4-5")).status_code == 200
    [sent] = anthropic_server.message_requests()
    assert sent["body"]["system"] == LONG
