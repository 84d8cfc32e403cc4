"""Anthropic Messages as the gateway's ingress protocol (`POST /v1/messages`), as pure functions.

An Anthropic target hears the client's own body (`native_request`: only `model` changed, the betas and
version the client sent kept), so prompt caching, thinking signatures and betas survive. Any other
target is reached through chat completions: `to_chat` turns a Messages request into an OpenAI chat
body for the target's adapter, `message_from_chat` turns the adapter's chat.completion back into a
Message, and `EventWriter` turns its chat.completion.chunk dicts into Messages stream events.
"""

import hashlib
import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from ..base import Target, UpstreamError, UpstreamRequest, Usage
from ..chat_deltas import ChatDeltaWalker
from .request import ANTHROPIC_VERSION, auth_headers

STOP_REASONS: dict[Any, str] = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                                 "function_call": "tool_use", "content_filter": "refusal"}
# Extended thinking's budget -> the seed's reasoning effort (the inverse of request.THINKING_BUDGETS).
EFFORT_FOR_BUDGET = ((5000, "low"), (10000, "medium"))
CHAT_USER_MAX = 64  # OpenAI refuses a longer `user`


def new_message_id() -> str:
    return "msg_" + uuid.uuid4().hex[:24]


# -- native: the body as the client sent it -----------------------------------------------------------

def native_request(body: dict[str, Any], target: Target, model: str, client_headers: dict[str, str],
                   path: str = "messages") -> UpstreamRequest:
    """`POST {base}/messages` (or `/messages/count_tokens`) with only the model (and the key) changed.

    `client_headers` holds the client's `anthropic-version` and `anthropic-beta`, which go along."""
    out = dict(body)
    out.pop("provider", None)  # the gateway's routing hint, not Anthropic's
    out["model"] = model
    headers = auth_headers(target)
    headers["anthropic-version"] = client_headers.get("anthropic-version") or ANTHROPIC_VERSION
    if client_headers.get("anthropic-beta"):
        headers["anthropic-beta"] = client_headers["anthropic-beta"]
    if out.get("stream") is True and path == "messages":
        headers["accept"] = "text/event-stream"
    return UpstreamRequest("POST", f"{target.base_url}/{path}", headers, orjson.dumps(out))


# -- Messages request -> chat request -----------------------------------------------------------------

def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(b.get("text") or "" for b in content or () if isinstance(b, dict) and b.get("type") == "text")


def _image_part(source: dict[str, Any], param: str) -> dict[str, Any]:
    kind = source.get("type")
    url: object
    if kind == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    elif kind == "url":
        url = source.get("url")
    else:
        raise UpstreamError(400, f"Image sources of type '{kind}' only work with Anthropic models.", param=param)
    return {"type": "image_url", "image_url": {"url": url}}


def _document_part(source: dict[str, Any], param: str) -> dict[str, Any]:
    kind = source.get("type")
    if kind == "base64":
        return {"type": "file", "file": {"file_data": f"data:{source.get('media_type')};base64,{source.get('data')}"}}
    if kind == "text":
        return {"type": "text", "text": source.get("data") or ""}
    raise UpstreamError(400, f"Document sources of type '{kind}' only work with Anthropic models.", param=param)


def _user_parts(blocks: list[Any], where: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(tool messages, content parts) of one user turn: tool results go first, as OpenAI wants them
    right after the assistant's tool calls."""
    tools, parts = [], []
    for j, block in enumerate(blocks):
        param = f"{where}.content[{j}]"
        kind = block["type"]
        if kind == "text":
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            parts.append(_image_part(block["source"], param))
        elif kind == "document":
            parts.append(_document_part(block["source"], param))
        elif kind == "tool_result":
            content = block.get("content")
            text = _text_of(content) if content is not None else ""
            if block.get("is_error") is True and not text:
                text = "error"
            tools.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": text})
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            raise UpstreamError(400, f"Content blocks of type '{kind}' only work with Anthropic models.", param=param)
    return tools, parts


def _assistant_message(blocks: list[Any], where: str) -> dict[str, Any] | None:
    texts, calls = [], []
    for j, block in enumerate(blocks):
        kind = block["type"]
        if kind == "text":
            texts.append(block["text"])
        elif kind == "tool_use":
            calls.append({"id": block["id"], "type": "function", "function": {
                "name": block["name"], "arguments": orjson.dumps(block.get("input") or {}).decode()}})
        elif kind in ("thinking", "redacted_thinking"):
            continue  # signed for Anthropic only; another provider cannot verify or use it
        else:
            raise UpstreamError(400, f"Content blocks of type '{kind}' only work with Anthropic models.",
                                param=f"{where}.content[{j}]")
    if not texts and not calls:
        return None
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return message


def cleared(messages: Sequence[Any], i: int) -> bool:
    """A turn-scoped system message (`clear_at: "next_user_message"`, a beta) that a later user turn has
    cleared: Anthropic keeps it in the array but no longer shows it to the model, nor counts it."""
    message = messages[i]
    return (isinstance(message, dict) and message.get("role") == "system"
            and message.get("clear_at") == "next_user_message"
            and any(isinstance(m, dict) and m.get("role") == "user" for m in messages[i + 1:]))


def system_text(content: Any, where: str) -> str:
    """A system message's (or the top-level system's) text: blocks are separate paragraphs."""
    if isinstance(content, str):
        return content
    texts = []
    for j, block in enumerate(content or ()):
        if block.get("type") != "text":
            raise UpstreamError(400, f"Content blocks of type '{block.get('type')}' in a system message only work "
                                "with Anthropic models.", param=f"{where}.content[{j}]")
        if block["text"]:
            texts.append(block["text"])
    return "\n\n".join(texts)


def chat_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The Messages request's system and turns as OpenAI chat messages. A mid-conversation system message
    stays where it is, as a chat `system` message (adapters move it where their provider wants it)."""
    out = []
    system = body.get("system")
    if isinstance(system, list):  # blocks are separate paragraphs (Claude Code sends several)
        system = "\n\n".join(block["text"] for block in system if block["text"])
    if system:
        out.append({"role": "system", "content": system})
    messages = body["messages"]
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        content = message["content"]
        if message["role"] == "system":
            text = system_text(content, where)
            if text and not cleared(messages, i):
                out.append({"role": "system", "content": text})
            continue
        if message["role"] == "assistant":
            converted = _assistant_message([{"type": "text", "text": content}] if isinstance(content, str)
                                           else content, where)
            if converted is not None:
                out.append(converted)
            continue
        if isinstance(content, str):
            out.append({"role": "user", "content": content})
            continue
        tools, parts = _user_parts(content, where)
        out.extend(tools)
        if parts:  # one text block is plain content, as most providers take best; more keep their parts
            plain = len(parts) == 1 and parts[0]["type"] == "text"
            out.append({"role": "user", "content": parts[0]["text"] if plain else parts})
    return out


def _tools(tools: list[Any]) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools):
        if tool.get("type") not in (None, "custom") or "input_schema" not in tool:
            raise UpstreamError(400, f"The tool type '{tool.get('type')}' (a server tool) only works with Anthropic "
                                "models.", param=f"tools[{i}]")
        function = {"name": tool["name"], "parameters": tool["input_schema"]}
        if tool.get("description"):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def _surfaced(messages: list[Any]) -> set[str]:
    """Tools a conversation has surfaced: named by a `tool_reference` block in a tool's result (what a tool search
    answers) or by a `tool_addition` block in a system message."""
    names = set()
    for message in messages:
        for block in message["content"] if isinstance(message["content"], list) else ():
            if block.get("type") == "tool_addition" and isinstance(block.get("tool"), dict):
                names.add(block["tool"].get("name"))
            elif block.get("type") == "tool_result" and isinstance(block.get("content"), list):
                names.update(inner.get("tool_name") for inner in block["content"]
                             if isinstance(inner, dict) and inner.get("type") == "tool_reference")
    return names


def offered_tools(body: dict[str, Any]) -> list[Any]:
    """The tools the model is offered: a deferred one (`defer_loading: true`, which Anthropic withholds until a tool
    search or a `tool_addition` surfaces it; Claude Code declares a placeholder so) only once it is surfaced."""
    tools = body.get("tools") or []
    if not any(tool.get("defer_loading") is True for tool in tools):
        return tools
    surfaced = _surfaced(body["messages"])
    return [tool for tool in tools if tool.get("defer_loading") is not True or tool.get("name") in surfaced]


def _tool_choice(choice: dict[str, Any], out: dict[str, Any]) -> None:
    kind = choice.get("type")
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool":
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    if choice.get("disable_parallel_tool_use") is True and kind != "none":
        out["parallel_tool_calls"] = False


def _effort(body: dict[str, Any]) -> str | None:
    thinking = body.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") == "disabled":
        return None
    config = body.get("output_config")
    if isinstance(config, dict) and isinstance(effort := config.get("effort"), str):
        return effort
    budget = thinking.get("budget_tokens")
    if thinking.get("type") == "enabled" and isinstance(budget, int):
        return next((effort for top, effort in EFFORT_FOR_BUDGET if budget <= top), "high")
    return "medium"  # adaptive without an effort: the API's own default level


def chat_user(user_id: str) -> str:
    """OpenAI takes a `user` of at most 64 characters; Claude Code's user_id is a ~150-character JSON object,
    so a longer one goes as its SHA-256 (as stable an identifier, and as opaque)."""
    if len(user_id) <= CHAT_USER_MAX:
        return user_id
    return hashlib.sha256(user_id.encode()).hexdigest()


def to_chat(body: dict[str, Any], stream: bool) -> dict[str, Any]:
    """A validated Messages request as an OpenAI chat body (for a non-Anthropic target's adapter).

    Dropped, as chat completions cannot say them: `top_k`, `cache_control` breakpoints, thinking
    blocks of earlier turns (their signatures are only Anthropic's to check). Raises UpstreamError(400)
    for what another provider cannot take (server tools, file ids)."""
    out: dict[str, Any] = {"model": body["model"], "messages": chat_messages(body), "max_tokens": body["max_tokens"]}
    if body.get("stop_sequences"):
        out["stop"] = body["stop_sequences"]
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            out[name] = body[name]
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        out["user"] = chat_user(metadata["user_id"])
    tools = _tools(offered_tools(body))
    if tools:
        out["tools"] = tools
        if isinstance(body.get("tool_choice"), dict):
            _tool_choice(body["tool_choice"], out)
    effort = _effort(body)
    if effort is not None:
        out["reasoning"] = {"effort": effort}
    if stream:
        out["stream"] = True
    return out


# -- chat response -> Message -------------------------------------------------------------------------

def stop_reason(finish_reason: Any) -> str | None:
    if finish_reason is None:
        return None
    return STOP_REASONS.get(finish_reason, "end_turn")


def anthropic_usage(usage: Usage | None) -> dict[str, Any]:
    """Usage in Anthropic's terms: its input_tokens leave out the cached (read) tokens."""
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0}
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    return {"input_tokens": usage.prompt_tokens - cached, "output_tokens": usage.completion_tokens,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached}


def _arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        parsed = orjson.loads(raw) if isinstance(raw, str) and raw.strip() else {}
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def message_from_chat(data: dict[str, Any], usage: Usage | None, model: str) -> dict[str, Any]:
    """An adapter's chat.completion as a Message."""
    choices = data.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = message if isinstance(message := choice.get("message"), dict) else {}
    content = []
    if isinstance(message.get("reasoning_content"), str) and message["reasoning_content"]:
        content.append({"type": "thinking", "thinking": message["reasoning_content"], "signature": ""})
    text = message.get("content")
    if isinstance(text, list):  # content parts, as some OpenAI-format providers answer
        text = "".join(p.get("text") or "" for p in text if isinstance(p, dict))
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            content.append({"type": "tool_use", "id": call.get("id") or "toolu_" + uuid.uuid4().hex[:24],
                            "name": function.get("name") or "", "input": _arguments(function.get("arguments"))})
    return {"id": new_message_id(), "type": "message", "role": "assistant", "model": data.get("model") or model,
            "content": content, "stop_reason": stop_reason(choice.get("finish_reason")) or "end_turn",
            "stop_sequence": None, "usage": anthropic_usage(usage)}


# -- chat chunks -> Messages stream events ------------------------------------------------------------

def sse(name: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def error_event(error_type: str, message: str) -> bytes:
    return sse("error", {"type": "error", "error": {"type": error_type, "message": message}})


class EventWriter(ChatDeltaWalker):
    """Turns chat.completion.chunk dicts into the Messages stream's events, in Anthropic's order:
    message_start, ping, then per block content_block_start / _delta… / _stop, then message_delta
    (stop reason and usage) and message_stop from `finish`."""

    __slots__ = ("model", "started", "index", "open_kind", "tools", "stop")

    def __init__(self, model: str):
        self.model = model
        self.started = False
        self.index = -1  # the current content block
        self.open_kind: str | None = None  # its type, while it is open
        self.tools: dict[int, int] = {}  # chat tool-call index -> content block index
        self.stop: str | None = None

    def start(self) -> list[bytes]:
        if self.started:
            return []
        self.started = True
        message: dict[str, Any] = {"id": new_message_id(), "type": "message", "role": "assistant", "model": self.model,
                   "content": [], "stop_reason": None, "stop_sequence": None, "usage": anthropic_usage(None)}
        return [sse("message_start", {"type": "message_start", "message": message}), sse("ping", {"type": "ping"})]

    def _close(self) -> list[bytes]:
        if self.open_kind is None:
            return []
        self.open_kind = None
        return [sse("content_block_stop", {"type": "content_block_stop", "index": self.index})]

    def _open(self, kind: str, block: dict[str, Any]) -> list[bytes]:
        events = self._close()
        self.index += 1
        self.open_kind = kind
        events.append(sse("content_block_start", {"type": "content_block_start", "index": self.index,
                                                  "content_block": block}))
        return events

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})

    def feed(self, chunk: dict[str, Any]) -> list[bytes]:
        return self.start() + self.walk(chunk)

    def on_reasoning(self, text: str) -> list[bytes]:
        events = [] if self.open_kind == "thinking" else self._open(
            "thinking", {"type": "thinking", "thinking": "", "signature": ""})
        events.append(self._delta(self.index, {"type": "thinking_delta", "thinking": text}))
        return events

    def on_text(self, text: str) -> list[bytes]:
        events = [] if self.open_kind == "text" else self._open("text", {"type": "text", "text": ""})
        events.append(self._delta(self.index, {"type": "text_delta", "text": text}))
        return events

    def on_tool_call(self, position: int, call: dict[str, Any], function: dict[str, Any]) -> list[bytes]:
        events = []
        if position not in self.tools:
            block: dict[str, Any] = {"type": "tool_use", "id": call.get("id") or "toolu_" + uuid.uuid4().hex[:24],
                     "name": function.get("name") or "", "input": {}}
            events += self._open("tool_use", block)
            self.tools[position] = self.index
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            events.append(self._delta(self.tools[position], {"type": "input_json_delta", "partial_json": arguments}))
        return events

    def on_finish(self, reason: str) -> None:
        self.stop = stop_reason(reason)

    def finish(self, usage: Usage | None) -> list[bytes]:
        """The upstream's stream completed: close the last block, then the message."""
        events = self.start() + self._close()
        events.append(sse("message_delta", {"type": "message_delta",
                                            "delta": {"stop_reason": self.stop or "end_turn", "stop_sequence": None},
                                            "usage": anthropic_usage(usage)}))
        events.append(sse("message_stop", {"type": "message_stop"}))
        return events


# -- usage estimates ----------------------------------------------------------------------------------

def estimate_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request as chat-like messages whose text accounting/usage/estimate.py can count (a lower bound:
    images are not counted), with the tool definitions as text, since they are prompt tokens too."""
    messages = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": _text_of(system) if isinstance(system, list) else system})
    turns = body.get("messages") or ()
    for i, message in enumerate(turns):
        if cleared(turns, i):
            continue  # renders nothing, as Anthropic counts it
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            texts = []
            for block in content:
                if not isinstance(block, dict):
                    continue
                for field in ("text", "thinking"):
                    if isinstance(block.get(field), str):
                        texts.append(block[field])
                if block.get("type") == "tool_use":
                    texts.append(orjson.dumps(block.get("input")).decode())
                elif block.get("type") == "tool_result":
                    texts.append(_text_of(block.get("content")) if isinstance(block.get("content"), list)
                                 else str(block.get("content") or ""))
            content = "\n".join(texts)
        messages.append({"role": message.get("role") if isinstance(message, dict) else "user",
                         "content": content if isinstance(content, str) else ""})
    if body.get("tools"):
        messages.append({"role": "system", "content": orjson.dumps(body["tools"]).decode()})
    return messages
