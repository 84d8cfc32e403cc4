"""OpenAI chat request -> Anthropic Messages request (`POST {base}/messages`)."""

import os
import re
from typing import Any

import orjson

from ..base import Target, UpstreamError, UpstreamRequest
from ..openai_reader import data_url, file_data, image_url, read_part, tool_call_arguments

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096

# Older models think with a fixed budget; the request's max_tokens is raised by it, so that the
# answer after the thinking still has the room the client asked for.
THINKING_BUDGETS = {"minimal": 5000, "low": 5000, "medium": 10000, "high": 20000, "xhigh": 20000, "max": 20000}

# `claude-<family>-<major>[-<minor>]`, the minor being one or two digits (not a date snapshot):
# claude-opus-4-6, claude-sonnet-4-6-20260101, claude-opus-5, claude-sonnet-5-20270101, claude-opus-5-5.
# Names from before the family-first scheme (claude-3-7-sonnet-…) do not match: they are older.
_MODEL_VERSION = re.compile(r"claude-([a-z]+)-(\d+)(?:-(\d{1,2}))?(?!\d)")


def auth_headers(target: Target) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept": "application/json",
               "anthropic-version": ANTHROPIC_VERSION}
    if target.api_key:
        headers["x-api-key"] = target.api_key
    return headers


def build_models_request(target: Target) -> UpstreamRequest:
    """The listing is paginated, 20 models a page by default; one page of up to 1000 holds them all."""
    headers = auth_headers(target)
    headers.pop("content-type")
    return UpstreamRequest("GET", f"{target.base_url}/models?limit=1000", headers)


def default_max_tokens() -> int:
    """ANTHROPIC_DEFAULT_MAX_TOKENS from the environment, read at call time (Anthropic requires max_tokens)."""
    return int(os.environ.get("ANTHROPIC_DEFAULT_MAX_TOKENS", DEFAULT_MAX_TOKENS))


def build_chat_request(body: dict[str, Any], target: Target, model: str, stream: bool) -> UpstreamRequest:
    """Translate an (already validated) OpenAI chat body. Raises UpstreamError(400, …) for what the
    Messages API cannot express, which the gateway answers as a 400 invalid_request_error."""
    system, messages = convert_messages(body.get("messages") or [])
    out: dict[str, Any] = {"model": model}
    if system is not None:
        out["system"] = system
    out["messages"] = messages

    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or default_max_tokens()
    out["max_tokens"] = max_tokens

    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop_sequences"] = [s for s in stop if isinstance(s, str)]

    for name in ("temperature", "top_p", "top_k"):
        if body.get(name) is not None:
            out[name] = body[name]

    user = body.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}

    n = body.get("n")
    if n is not None and n != 1:
        raise UpstreamError(400, "Anthropic models return one choice per request; 'n' must be 1.", param="n")

    _apply_tools(body, out)
    _apply_reasoning(body, out, model, max_tokens)

    if stream:
        out["stream"] = True
    headers = auth_headers(target)
    if stream:
        headers["accept"] = "text/event-stream"
    return UpstreamRequest("POST", f"{target.base_url}/messages", headers, orjson.dumps(out))


# -- messages ----------------------------------------------------------------------------------------

def convert_messages(messages: list[Any]) -> tuple[str | list[Any] | None, list[dict[str, Any]]]:
    """(top-level system, Anthropic messages). Consecutive `tool` messages become one user message
    of tool_result blocks."""
    system_parts: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    pending_results: list[dict[str, Any]] | None = None  # the open user message of tool results, if any
    for i, message in enumerate(messages):
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system_parts.extend(_text_blocks(content, i))
            continue
        if role == "tool":
            block: dict[str, Any] = {"type": "tool_result", "tool_use_id": str(message.get("tool_call_id") or "")}
            result = _tool_result_content(content, i)
            if result is not None:
                block["content"] = result
            if pending_results is None:
                pending_results = []
                out.append({"role": "user", "content": pending_results})
            pending_results.append(block)
            continue
        pending_results = None
        if role == "user":
            out.append({"role": "user", "content": _user_content(content, i)})
        elif role == "assistant":
            blocks = _assistant_blocks(message, i)
            if blocks:
                out.append({"role": "assistant", "content": blocks})
        else:
            raise UpstreamError(400, f"Anthropic models do not take messages with role '{role}'.",
                                param=f"messages[{i}].role")
    return _system(system_parts), out


def _system(parts: list[dict[str, Any]]) -> str | list[Any] | None:
    if not parts:
        return None
    if any("cache_control" in p for p in parts):
        return parts  # keep the caller's prompt-cache breakpoints
    return "\n\n".join(p["text"] for p in parts)


def _text_blocks(content: Any, i: int) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        block = _part(part, i)
        if block["type"] != "text":
            raise UpstreamError(400, "System messages sent to Anthropic may only hold text.",
                                param=f"messages[{i}].content")
        blocks.append(block)
    return blocks


def _user_content(content: Any, i: int) -> str | list[dict[str, Any]]:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return [_part(part, i) for part in content]


def _tool_result_content(content: Any, i: int) -> str | list[dict[str, Any]] | None:
    if content is None:
        return None
    if isinstance(content, str):
        return content
    return [_part(part, i) for part in content]


def _assistant_blocks(message: dict[str, Any], i: int) -> list[dict[str, Any]]:
    content = message.get("content")
    blocks: list[dict[str, Any]] = []
    if isinstance(content, str):
        if content:
            blocks.append({"type": "text", "text": content})
    elif isinstance(content, list):
        for part in content:
            read = read_part(part)
            if read is not None and read.kind == "refusal":
                part = {"type": "text", "text": read.text or ""}
            block = _part(part, i)
            if block["type"] != "text" or block["text"]:
                blocks.append(block)
    for j, call in enumerate(message.get("tool_calls") or ()):
        param = f"messages[{i}].tool_calls[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise UpstreamError(400, "A tool call needs a function with a name.", param=param)
        parsed = tool_call_arguments(function.get("arguments"))
        if parsed is None:
            raise UpstreamError(400, "Tool call arguments must be a JSON object for Anthropic models.",
                                param=f"{param}.function.arguments")
        blocks.append({"type": "tool_use", "id": str(call.get("id") or ""), "name": function["name"],
                       "input": parsed})
    return blocks


def _part(part: Any, i: int) -> dict[str, Any]:
    """One OpenAI content part -> one Anthropic content block."""
    param = f"messages[{i}].content"
    read = read_part(part)
    if read is None:
        raise UpstreamError(400, "A content part must be an object.", param=param)
    block: dict[str, Any]
    if read.kind == "text":
        block = {"type": "text", "text": read.text or ""}
    elif read.kind == "image_url":
        block = {"type": "image", "source": _image_source(image_url(read), param)}
    elif read.kind == "input_audio":
        raise UpstreamError(400, "Anthropic models do not accept audio input (input_audio).", param=param)
    elif read.kind == "file":
        block = _document(file_data(read), param)
    else:
        raise UpstreamError(400, f"Anthropic models do not accept content parts of type '{part.get('type')}'.",
                            param=param)
    if read.cache_control is not None:
        block["cache_control"] = read.cache_control
    return block


def _data_url(url: str, param: str) -> tuple[str, str]:
    """`data:<media type>;base64,<data>` -> (media type, data)."""
    parsed = data_url(url)
    if parsed is None:
        raise UpstreamError(400, "A data: URL must be base64-encoded (data:<type>;base64,…).", param=param)
    return parsed[0] or "", parsed[1]


def _image_source(url: object, param: str) -> dict[str, Any]:
    if not isinstance(url, str):
        raise UpstreamError(400, "An image_url part needs a url.", param=param)
    if url.startswith("data:"):
        media_type, data = _data_url(url, param)
        return {"type": "base64", "media_type": media_type, "data": data}
    if url.startswith(("http://", "https://")):
        return {"type": "url", "url": url}
    raise UpstreamError(400, "An image URL must be a data: URL or an http(s) URL.", param=param)


def _document(data: object, param: str) -> dict[str, Any]:
    if not isinstance(data, str) or not data.startswith("data:"):
        raise UpstreamError(400, "Anthropic models take files only inline, as a base64 data: URL in file_data.",
                            param=param)
    media_type, payload = _data_url(data, param)
    return {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": payload}}


# -- tools ---------------------------------------------------------------------------------------------

def _apply_tools(body: dict[str, Any], out: dict[str, Any]) -> None:
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if not tools or choice == "none":
        return  # tool_choice "none": the model may not call any, so it is shown none
    converted: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if tool.get("type", "function") == "function" else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise UpstreamError(400, "Anthropic models take only function tools with a name.", param=f"tools[{i}]")
        entry: dict[str, Any] = {"name": function["name"]}
        if function.get("description"):
            entry["description"] = function["description"]
        parameters = function.get("parameters")
        entry["input_schema"] = parameters if isinstance(parameters, dict) else {"type": "object", "properties": {}}
        converted.append(entry)
    out["tools"] = converted

    tool_choice: dict[str, Any] | None = None
    if choice == "auto":
        tool_choice = {"type": "auto"}
    elif choice == "required":
        tool_choice = {"type": "any"}
    elif isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str):
            raise UpstreamError(400, "tool_choice must name a function.", param="tool_choice")
        tool_choice = {"type": "tool", "name": name}
    elif choice is not None:
        raise UpstreamError(400, f"tool_choice '{choice}' is not supported.", param="tool_choice")
    if body.get("parallel_tool_calls") is False:
        tool_choice = {**(tool_choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    if tool_choice is not None:
        out["tool_choice"] = tool_choice


# -- reasoning -----------------------------------------------------------------------------------------

def _model_version(model: str) -> tuple[str, int, int] | None:
    match = _MODEL_VERSION.search(model.lower())
    if match is None:
        return None
    return match.group(1), int(match.group(2)), int(match.group(3) or 0)


def takes_adaptive_thinking(model: str) -> bool:
    """claude-opus-4-6 and later, claude-sonnet-4-6 and later, any claude-*-5 or newer."""
    version = _model_version(model)
    if version is None:
        return False
    family, major, minor = version
    return major >= 5 or (major == 4 and minor >= 6 and family in ("opus", "sonnet"))


def takes_xhigh(model: str) -> bool:
    """Anthropic's `xhigh` effort exists on Opus 4.7 and later and on every *-5 model, not on 4.6."""
    version = _model_version(model)
    if version is None:
        return False
    family, major, minor = version
    return major >= 5 or (major == 4 and minor >= 7 and family == "opus")


def adaptive_effort(effort: str, model: str) -> str:
    """OpenAI effort -> Anthropic `output_config.effort` (low, medium, high, xhigh, max).

    minimal -> low (Anthropic's lowest). xhigh -> xhigh where the model has it; on Opus/Sonnet 4.6,
    which stop at high then max, it becomes high: the client gets no more spending than it asked for.
    max -> max, which every adaptive model takes.
    """
    if effort == "minimal":
        return "low"
    if effort == "xhigh" and not takes_xhigh(model):
        return "high"
    return effort


def _apply_reasoning(body: dict[str, Any], out: dict[str, Any], model: str, max_tokens: int) -> None:
    reasoning = body.get("reasoning")
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
    if effort is None:
        effort = body.get("reasoning_effort")
    if not isinstance(effort, str) or effort not in THINKING_BUDGETS:
        return  # absent, "none", or a value with no Anthropic meaning: no thinking
    if takes_adaptive_thinking(model):
        out["thinking"] = {"type": "adaptive"}
        out["output_config"] = {"effort": adaptive_effort(effort, model)}
    else:
        budget = THINKING_BUDGETS[effort]
        out["thinking"] = {"type": "enabled", "budget_tokens": budget}
        out["max_tokens"] = budget + max_tokens  # the budget counts against max_tokens
    # With thinking on, Anthropic accepts no temperature but 1, and no top_k.
    if out.get("temperature") not in (None, 1):
        del out["temperature"]
    out.pop("top_k", None)
