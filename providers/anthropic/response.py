"""Anthropic Message -> OpenAI chat.completion; Anthropic usage -> OpenAI usage."""

import time
from typing import Any

import orjson

from ..base import UpstreamError, Usage

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
}

# Anthropic's error types and the HTTP status each comes with.
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def finish_reason(stop_reason: Any) -> str | None:
    if stop_reason is None:
        return None
    return FINISH_REASONS.get(stop_reason, "stop")


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _reasoning_tokens(usage: dict[str, Any]) -> int | None:
    """Anthropic bills thinking as output and does not normally break it out; take it when it does."""
    for holder in (usage, usage.get("output_tokens_details")):
        if isinstance(holder, dict):
            for key in ("reasoning_tokens", "thinking_tokens"):
                if isinstance(value := holder.get(key), int):
                    return value
    return None


def convert_usage(raw: dict[str, Any]) -> tuple[dict[str, Any], Usage]:
    """Anthropic usage -> (OpenAI usage dict with raw_usage, Usage).

    OpenAI counts every prompt token in prompt_tokens, cached ones included; Anthropic splits them
    into input_tokens (uncached), cache_read_input_tokens and cache_creation_input_tokens.
    """
    cache_read = _int(raw.get("cache_read_input_tokens"))
    cache_write = _int(raw.get("cache_creation_input_tokens"))
    prompt = _int(raw.get("input_tokens")) + cache_read + cache_write
    completion = _int(raw.get("output_tokens"))
    reasoning = _reasoning_tokens(raw)
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cache_read},
    }
    if reasoning is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    usage["raw_usage"] = raw
    return usage, Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion,
                        cached_tokens=cache_read, reasoning_tokens=reasoning or 0, cache_write_tokens=cache_write)


def error_status(error_type: Any) -> int:
    return ERROR_STATUS.get(error_type, 502)


def parse_chat_response(raw: bytes) -> tuple[dict[str, Any], Usage | None]:
    data = orjson.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("upstream answered with a JSON value that is not an object")
    if data.get("type") == "error":
        err = err if isinstance(err := data.get("error"), dict) else {}
        raise UpstreamError(error_status(err.get("type")), str(err.get("message") or "upstream error"),
                            code=err.get("type") if isinstance(err.get("type"), str) else None)
    blocks = data.get("content")
    if not isinstance(blocks, list):
        raise ValueError("the Anthropic message has no content list")

    texts, thoughts, calls = [], [], []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "thinking":
            thoughts.append(block.get("thinking") or "")
        elif kind == "tool_use":
            calls.append({"id": block.get("id"), "type": "function", "function": {
                "name": block.get("name"), "arguments": orjson.dumps(block.get("input") or {}).decode()}})
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else (None if calls else "")}
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    if calls:
        message["tool_calls"] = calls

    result = {
        "id": data.get("id"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": data.get("model"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(data.get("stop_reason")) or "stop",
                     "logprobs": None}],
    }
    usage = None
    raw_usage = data.get("usage")
    if isinstance(raw_usage, dict):
        result["usage"], usage = convert_usage(raw_usage)
    return result, usage


def parse_models(raw: bytes) -> list[str]:
    data = orjson.loads(raw)
    items = data.get("data") if isinstance(data, dict) else None
    return [item["id"] for item in items or () if isinstance(item, dict) and isinstance(item.get("id"), str)]
