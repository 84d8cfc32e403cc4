"""Anthropic's Messages SSE events -> OpenAI chat.completion.chunk dicts.

message_start          -> the first chunk: delta {role: assistant, content: ""}
content_block_start    -> for tool_use, the tool call's first delta (id, type, name, arguments "")
content_block_delta    -> text_delta: content; thinking_delta: reasoning_content;
                          input_json_delta: the tool call's arguments; signature_delta: nothing
message_delta          -> a chunk with finish_reason, then a chunk with choices [] and the usage
message_stop           -> the stream is complete
error                  -> StreamError
"""

import time
from typing import Any

import orjson

from ..base import StreamError, Usage
from .response import convert_usage, finish_reason


class StreamParser:
    __slots__ = ("model", "usage", "complete", "id", "created", "_start_usage", "_tools", "_tool_count")

    def __init__(self, model: str = ""):
        self.model = model
        self.usage: Usage | None = None
        self.complete = False  # message_stop arrived
        self.id = ""
        self.created = int(time.time())
        self._start_usage: dict[str, Any] = {}
        self._tools: dict[Any, int] = {}  # content block index (as the upstream sent it) -> tool call index
        self._tool_count = 0

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}

    def feed(self, event: str | None, data: bytes) -> list[dict[str, Any]]:
        payload = orjson.loads(data)
        if not isinstance(payload, dict):
            return []
        kind = payload.get("type") or event
        if kind == "content_block_delta":
            return self._delta(payload)
        if kind == "message_start":
            message = payload.get("message") or {}
            self.id = message.get("id") or self.id
            self.model = message.get("model") or self.model
            usage = message.get("usage")
            self._start_usage = usage if isinstance(usage, dict) else {}
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._block_start(payload)
        if kind == "message_delta":
            return self._message_delta(payload)
        if kind == "message_stop":
            self.complete = True
            return []
        if kind == "error":
            err = payload.get("error")
            err = err if isinstance(err, dict) else {}
            code = code if isinstance(code := err.get("type"), str) else None
            raise StreamError(str(err.get("message") or code or "upstream stream error"), code=code,
                              details=err)
        return []  # ping, content_block_stop, and event types this gateway does not know

    def _block_start(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        block = payload.get("content_block") or {}
        kind = block.get("type")
        if kind == "tool_use":
            index = self._tool_count
            self._tool_count += 1
            self._tools[payload.get("index")] = index
            return [self._chunk({"tool_calls": [{"index": index, "id": block.get("id"), "type": "function",
                                                 "function": {"name": block.get("name"), "arguments": ""}}]})]
        if kind == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        if kind == "thinking" and block.get("thinking"):
            return [self._chunk({"reasoning_content": block["thinking"]})]
        return []

    def _delta(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        delta = payload.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            return [self._chunk({"content": delta.get("text") or ""})]
        if kind == "thinking_delta":
            return [self._chunk({"reasoning_content": delta.get("thinking") or ""})]
        if kind == "input_json_delta":
            index = self._tools.get(payload.get("index"))
            part = delta.get("partial_json") or ""
            if index is None or not part:
                return []
            return [self._chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})]
        return []  # signature_delta, citations_delta

    def _message_delta(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        chunks = []
        delta = payload.get("delta") or {}
        finish = finish_reason(delta.get("stop_reason"))
        if finish is not None:
            chunks.append(self._chunk({}, finish))
        usage = payload.get("usage")
        if isinstance(usage, dict) or self._start_usage:
            # Input counts come from message_start, output from message_delta (whose counts are
            # cumulative, so any input count it restates is the final one).
            raw = {**self._start_usage, **(usage if isinstance(usage, dict) else {})}
            usage_dict, self.usage = convert_usage(raw)
            chunk = self._chunk({})
            chunk["choices"] = []
            chunk["usage"] = usage_dict
            chunks.append(chunk)
        return chunks

    def close(self) -> list[dict[str, Any]]:
        """At the upstream's EOF: nothing is buffered here."""
        return []
