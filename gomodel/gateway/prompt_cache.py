"""Provider prompt-cache planning: after routing, on the final upstream request of each target (so a field one
format takes never reaches a failover target of another), when the client gave no cache directive of its own
and the stable prefix is long enough for the provider to cache it:

- Anthropic (its Messages API, native or translated from chat/Responses): `cache_control` breakpoints, in the
  order the API reads the prompt — the last tool, the last system block, and the last block of the turn before
  the final user turn (the conversation so far). At most 3 of Anthropic's 4.
- OpenAI (chat completions and Responses; the provider type that takes it): a `prompt_cache_key` derived from
  the tenant and the prefix (system/developer instructions and tools), so calls sharing it land where it is
  cached — never shared across tenants.

A client's own directive wins: a body that holds `cache_control` anywhere (Anthropic) or a `prompt_cache_key`
(OpenAI) goes as it is. The saving shows in the usage's cache-read tokens, priced as such. On by default;
PROMPT_CACHE_PLANNING=0 turns it off.
"""

import dataclasses
import hashlib
from typing import Any

import orjson

from providers.base import Target, UpstreamRequest

CHARS_PER_TOKEN = 4  # an estimate, as everywhere on the event loop (no tokenizer)
MIN_TOKENS = 1024  # the least a prefix must be for Anthropic (most models) and OpenAI to cache it
# A body shorter than this cannot hold a prefix of MIN_TOKENS: skipped without being parsed.
MIN_BODY_BYTES = MIN_TOKENS * CHARS_PER_TOKEN
CACHEABLE_BLOCKS = frozenset(("text", "image", "document", "tool_use", "tool_result"))  # not thinking blocks
EPHEMERAL = {"type": "ephemeral"}
PATHS = ("/messages", "/chat/completions", "/responses")


def anthropic_minimum(model: str) -> int:
    """Anthropic's least cacheable prefix: 4096 tokens for Opus 4.5 and Haiku 4.5, 2048 for older Haikus."""
    name = model.lower()
    if "haiku-4-5" in name or "opus-4-5" in name:
        return 4096
    if "haiku" in name:
        return 2048
    return MIN_TOKENS


def plan(upstream: UpstreamRequest, target: Target, model: str, tenant_id) -> UpstreamRequest:
    """The request with its provider's cache directives added, or as it was."""
    body = upstream.body
    if not body or len(body) < MIN_BODY_BYTES or not upstream.url.endswith(PATHS):
        return upstream
    if target.wire == "anthropic":
        if b'"cache_control"' in body:
            return upstream
        planner = _anthropic
    elif target.provider_type == "openai":
        if b'"prompt_cache_key"' in body:
            return upstream
        planner = _openai
    else:
        return upstream
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return upstream
    if not isinstance(data, dict) or not planner(data, model, tenant_id):
        return upstream
    return dataclasses.replace(upstream, body=orjson.dumps(data))


def _chars(value) -> int:
    if isinstance(value, str):
        return len(value)
    if value is None:
        return 0
    return len(orjson.dumps(value))


def _anthropic(body: dict, model: str, tenant_id) -> bool:
    tools, system, messages = body.get("tools"), body.get("system"), body.get("messages")
    history = messages[:-1] if isinstance(messages, list) else []
    prefix = _chars(tools) + _chars(system) + _chars(history)
    if prefix < anthropic_minimum(model) * CHARS_PER_TOKEN:
        return False
    planned = False
    if isinstance(tools, list) and tools and isinstance(tools[-1], dict):
        tools[-1]["cache_control"] = EPHEMERAL
        planned = True
    if isinstance(system, str) and system:
        body["system"] = [{"type": "text", "text": system, "cache_control": EPHEMERAL}]
        planned = True
    elif isinstance(system, list) and system and isinstance(system[-1], dict) and system[-1].get("type") == "text":
        system[-1]["cache_control"] = EPHEMERAL
        planned = True
    if history and isinstance(history[-1], dict):
        turn = history[-1]
        content = turn.get("content")
        if isinstance(content, str) and content:
            turn["content"] = [{"type": "text", "text": content, "cache_control": EPHEMERAL}]
            planned = True
        elif isinstance(content, list) and content and isinstance(content[-1], dict) \
                and content[-1].get("type") in CACHEABLE_BLOCKS:
            content[-1]["cache_control"] = EPHEMERAL
            planned = True
    return planned


def _openai(body: dict, model: str, tenant_id) -> bool:
    instructions: Any  # chat's system/developer messages, or Responses' instructions (a string, items or None)
    if isinstance(body.get("messages"), list):  # chat completions
        messages = body["messages"]
        instructions = [m for m in messages if isinstance(m, dict) and m.get("role") in ("system", "developer")]
        history = messages[:-1]
    else:  # Responses
        instructions = body.get("instructions")
        items = body.get("input")
        history = items[:-1] if isinstance(items, list) else []
    stable = orjson.dumps([instructions, body.get("tools")], option=orjson.OPT_SORT_KEYS)
    if not instructions and not body.get("tools"):
        return False
    if len(stable) + _chars(history) < MIN_TOKENS * CHARS_PER_TOKEN:
        return False
    digest = hashlib.sha256(f"{tenant_id}\0".encode() + stable).hexdigest()
    body["prompt_cache_key"] = f"gm-{digest[:32]}"
    return True
