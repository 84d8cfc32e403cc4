"""Gemini `GenerateContentResponse` -> OpenAI chat.completion, and the model listing.

Wire format: https://ai.google.dev/api/generate-content#v1beta.GenerateContentResponse
(candidates, finishReason, promptFeedback.blockReason, usageMetadata, modelVersion, responseId).
"""

import time
import uuid
from typing import Any

import orjson

from ..base import UpstreamError, Usage

CONTENT_FILTER_REASONS = frozenset(("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII"))


def finish_reason(reason: str | None, has_tool_calls: bool) -> str | None:
    if has_tool_calls:
        return "tool_calls"
    if not reason:
        return None
    if reason == "MAX_TOKENS":
        return "length"
    if reason in CONTENT_FILTER_REASONS:
        return "content_filter"
    return "stop"


def _count(meta: dict[str, Any], key: str) -> int:
    value = meta.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_from(meta: object) -> tuple[Usage | None, dict[str, Any] | None]:
    """usageMetadata -> (Usage, the OpenAI `usage` object). Thinking tokens are output tokens."""
    if not isinstance(meta, dict):
        return None, None
    prompt = _count(meta, "promptTokenCount")
    thoughts = _count(meta, "thoughtsTokenCount")
    completion = _count(meta, "candidatesTokenCount") + thoughts
    cached = _count(meta, "cachedContentTokenCount")
    usage = Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion,
                  cached_tokens=cached, reasoning_tokens=thoughts)
    return usage, {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
        "raw_usage": meta,
    }


def blocked_error(data: dict[str, Any]) -> UpstreamError | None:
    """A prompt Gemini refused outright: no candidates, and promptFeedback says why."""
    if data.get("candidates"):
        return None
    feedback = data.get("promptFeedback")
    reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
    if not reason or not isinstance(feedback, dict):  # (a reason comes only from a dict)
        return None
    message = f"Gemini blocked the prompt (block reason: {reason})"
    detail = feedback.get("blockReasonMessage")
    message += f": {detail}" if isinstance(detail, str) and detail else "."
    return UpstreamError(400, message, code="prompt_blocked")


def split_parts(parts: Any) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """A candidate's parts -> (answer texts, thought texts, functionCall parts)."""
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in parts or ():
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("functionCall"), dict):
            calls.append(part)
        elif isinstance(part.get("text"), str):
            (thoughts if part.get("thought") is True else texts).append(part["text"])
    return texts, thoughts, calls


def tool_call(part: dict[str, Any], number: int) -> dict[str, Any]:
    """A functionCall part -> an OpenAI tool call. Its thought signature (Gemini 3 wants it back with the
    call in the next request) rides along as `extra_content.google.thought_signature`."""
    call = part["functionCall"]
    args = call.get("args")
    result = {
        "id": f"call_{number}",
        "type": "function",
        "function": {"name": str(call.get("name") or ""),
                     "arguments": orjson.dumps(args if args is not None else {}).decode()},
    }
    signature = part.get("thoughtSignature")
    if isinstance(signature, str) and signature:
        result["extra_content"] = {"google": {"thought_signature": signature}}
    return result


def completion_id(data: dict[str, Any]) -> str:
    response_id = data.get("responseId")
    return f"chatcmpl-{response_id}" if isinstance(response_id, str) and response_id else f"chatcmpl-{uuid.uuid4().hex}"


def parse_chat_response(raw: bytes, model: str = "") -> tuple[dict[str, Any], Usage | None]:
    data = orjson.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("upstream answered with a JSON value that is not an object")
    if isinstance(data.get("error"), dict):
        err = data["error"]
        status = status if isinstance(status := err.get("code"), int) else 502
        raise UpstreamError(status, str(err.get("message") or "Gemini reported an error"),
                            code=err.get("status") if isinstance(err.get("status"), str) else None)
    blocked = blocked_error(data)
    if blocked is not None:
        raise blocked
    candidates = data.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        raise ValueError("Gemini answered with no candidates")
    usage, usage_body = usage_from(data.get("usageMetadata"))
    choices = []
    calls_seen = 0
    for position, candidate in enumerate(candidates):
        if not isinstance(candidate, dict):
            continue
        content = content if isinstance(content := candidate.get("content"), dict) else {}
        texts, thoughts, calls = split_parts(content.get("parts"))
        message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else (None if calls else "")}
        if thoughts:
            message["reasoning_content"] = "".join(thoughts)
        if calls:
            message["tool_calls"] = [tool_call(call, calls_seen + k) for k, call in enumerate(calls)]
            calls_seen += len(calls)
        index = candidate.get("index")
        choices.append({
            "index": index if isinstance(index, int) else position,
            "message": message,
            "finish_reason": finish_reason(candidate.get("finishReason"), bool(calls)) or "stop",
            "logprobs": None,
        })
    result = {
        "id": completion_id(data),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": data.get("modelVersion") or model,
        "choices": choices,
    }
    if usage_body is not None:
        result["usage"] = usage_body
    return result, usage


SERVED_METHODS = frozenset(("generateContent", "embedContent", "batchEmbedContents"))


def parse_models(raw: bytes) -> list[str]:
    """`models[].name` without its "models/" prefix; only models that can generateContent or embed, when told."""
    data = orjson.loads(raw)
    items = data.get("models") if isinstance(data, dict) else None
    names = []
    for item in items or ():
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        methods = item.get("supportedGenerationMethods")
        if isinstance(methods, list) and not SERVED_METHODS.intersection(methods):
            continue
        names.append(item["name"].removeprefix("models/"))
    return names
