"""Provider prompt-cache planning on the final upstream bodies, per provider format."""

import orjson
import pytest

from gomodel.gateway.prompt_cache import plan
from providers.base import Target, UpstreamRequest

LONG = "You are a careful assistant. " * 200  # ~5,800 characters: ~1,450 tokens
TOOLS = [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}]


def target(provider_type: str, wire: str) -> Target:
    return Target(id=1, name=provider_type, provider_type=provider_type, wire=wire, base_url="https://x/v1",
                  api_key="k")


ANTHROPIC, OPENAI, GROQ = target("anthropic", "anthropic"), target("openai", "openai_compat"), target(
    "groq", "openai_compat")


def request(body: dict, path: str) -> UpstreamRequest:
    return UpstreamRequest("POST", f"https://x/v1/{path}", {}, orjson.dumps(body))


def planned(body: dict, to: Target, path: str, model="m", tenant=1) -> dict:
    return orjson.loads(plan(request(body, path), to, model, tenant).body)


def test_anthropic_gets_breakpoints_on_tools_system_and_the_conversation():
    body = {"model": "claude-sonnet-4-5", "max_tokens": 10, "system": LONG, "tools": [dict(t) for t in TOOLS],
            "messages": [{"role": "user", "content": "first"}, {"role": "assistant", "content": "answer"},
                         {"role": "user", "content": "second"}]}
    out = planned(body, ANTHROPIC, "messages", "claude-sonnet-4-5")
    assert out["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert out["system"] == [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}]
    assert out["messages"][1]["content"] == [{"type": "text", "text": "answer", "cache_control": {"type": "ephemeral"}}]
    assert out["messages"][2] == {"role": "user", "content": "second"}  # the new turn is not part of the prefix
    assert "prompt_cache_key" not in out


def test_anthropic_system_blocks_and_thinking_blocks():
    body = {"system": [{"type": "text", "text": LONG}], "messages": [
        {"role": "user", "content": "q"}, {"role": "assistant", "content": [{"type": "thinking", "thinking": "t"}]},
        {"role": "user", "content": "r"}]}
    out = planned(body, ANTHROPIC, "messages")
    assert out["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in out["messages"][1]["content"][0]  # a thinking block takes no breakpoint


@pytest.mark.parametrize("model, planned_at", [("claude-sonnet-4-5", True), ("claude-3-5-haiku", False),
                                                ("claude-haiku-4-5", False)])
def test_anthropic_minimum_prefix_per_model(model, planned_at):
    body = {"system": LONG, "messages": [{"role": "user", "content": "q"}]}  # ~1,450 tokens
    out = planned(body, ANTHROPIC, "messages", model)
    assert isinstance(out["system"], list) is planned_at


def test_short_prefixes_and_client_directives_are_left_alone():
    short = {"system": "Be brief.", "messages": [{"role": "user", "content": "q" * 8000}]}  # long turn, short prefix
    assert planned(short, ANTHROPIC, "messages") == short
    own = {"system": [{"type": "text", "text": LONG}], "messages": [
        {"role": "user", "content": [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}]}]}
    assert planned(own, ANTHROPIC, "messages") == own  # the client's directive wins: nothing added
    key = {"messages": [{"role": "system", "content": LONG}, {"role": "user", "content": "q"}],
           "prompt_cache_key": "mine"}
    assert planned(key, OPENAI, "chat/completions") == key


def test_openai_gets_a_stable_prompt_cache_key_per_tenant_and_prefix():
    body = {"model": "gpt-4o", "messages": [{"role": "system", "content": LONG}, {"role": "user", "content": "a"}]}
    first = planned(body, OPENAI, "chat/completions")
    again = planned({**body, "messages": [*body["messages"][:1], {"role": "user", "content": "b"}]}, OPENAI,
                    "chat/completions")
    other_tenant = planned(body, OPENAI, "chat/completions", tenant=2)
    assert first["prompt_cache_key"].startswith("gm-") and first["prompt_cache_key"] == again["prompt_cache_key"]
    assert other_tenant["prompt_cache_key"] != first["prompt_cache_key"]
    assert "cache_control" not in orjson.dumps(first).decode()
    responses = planned({"model": "gpt-4o", "instructions": LONG, "input": "hi"}, OPENAI, "responses")
    assert responses["prompt_cache_key"].startswith("gm-")


def test_other_formats_and_other_endpoints_get_nothing():
    chat = {"messages": [{"role": "system", "content": LONG}, {"role": "user", "content": "a"}]}
    assert planned(chat, GROQ, "chat/completions") == chat  # an OpenAI-format provider that does not take the key
    assert planned({"input": LONG}, OPENAI, "embeddings") == {"input": LONG}
    count = {"system": LONG, "messages": [{"role": "user", "content": "q"}]}
    assert planned(count, ANTHROPIC, "messages/count_tokens") == count
