"""Gemini `streamGenerateContent?alt=sse` events -> OpenAI chat.completion.chunk dicts.

Each SSE event is a whole GenerateContentResponse
(https://ai.google.dev/api/generate-content#method:-models.streamgeneratecontent):
text and thought parts arrive piecewise, a functionCall arrives whole, the last event carries the
candidate's finishReason, and usageMetadata (cumulative) may come with any event, the final one
included. There is no `[DONE]`: the stream ends at EOF.
"""

import time
from typing import Any

import orjson

from ..base import StreamError, Usage
from .response import blocked_error, completion_id, finish_reason, split_parts, tool_call, usage_from


class StreamParser:
    __slots__ = ("model", "usage", "finished", "_usage_body", "_id", "_created", "_model", "_started",
                 "_calls", "_closed")

    def __init__(self, model: str = ""):
        self.model = model
        self.usage: Usage | None = None
        self.finished = False  # a candidate carried finishReason
        self._usage_body: dict[str, Any] | None = None
        self._id: str | None = None
        self._created = int(time.time())
        self._model = model
        self._started: set[int] = set()  # choices whose role chunk went out
        self._calls: dict[int, int] = {}  # choice index -> tool calls sent so far
        self._closed = False

    @property
    def complete(self) -> bool:
        return self.finished

    def _chunk(self, choices: list[Any]) -> dict[str, Any]:
        return {"id": self._id, "object": "chat.completion.chunk", "created": self._created, "model": self._model,
                "choices": choices}

    def _delta(self, index: int, delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        return self._chunk([{"index": index, "delta": delta, "finish_reason": reason, "logprobs": None}])

    def feed(self, event: str | None, data: bytes) -> list[dict[str, Any]]:
        data = data.strip()
        if not data or data == b"[DONE]":
            return []
        payload = orjson.loads(data)
        if not isinstance(payload, dict):
            return []
        err = payload.get("error")
        if err is not None:
            if isinstance(err, dict):
                raise StreamError(str(err.get("message") or "Gemini reported an error"),
                                  code=err.get("status") if isinstance(err.get("status"), str) else None,
                                  details=err)
            raise StreamError(str(err))
        if self._id is None:
            self._id = completion_id(payload)
            if isinstance(payload.get("modelVersion"), str) and payload["modelVersion"]:
                self._model = payload["modelVersion"]
        usage, body = usage_from(payload.get("usageMetadata"))
        if usage is not None:
            self.usage, self._usage_body = usage, body
        blocked = blocked_error(payload)
        if blocked is not None:
            raise StreamError(blocked.message, code=blocked.code)
        chunks = []
        for position, candidate in enumerate(payload.get("candidates") or ()):
            if not isinstance(candidate, dict):
                continue
            index = index if isinstance(index := candidate.get("index"), int) else position
            if index not in self._started:
                self._started.add(index)
                chunks.append(self._delta(index, {"role": "assistant", "content": ""}))
            content = content if isinstance(content := candidate.get("content"), dict) else {}
            for part in content.get("parts") or ():
                texts, thoughts, calls = split_parts([part])
                if thoughts and thoughts[0]:
                    chunks.append(self._delta(index, {"reasoning_content": thoughts[0]}))
                elif texts and texts[0]:
                    chunks.append(self._delta(index, {"content": texts[0]}))
                elif calls:
                    number = self._calls.get(index, 0)
                    self._calls[index] = number + 1
                    call = {"index": number, **tool_call(calls[0], number)}
                    chunks.append(self._delta(index, {"tool_calls": [call]}))
            reason = candidate.get("finishReason")
            if reason:
                self.finished = True
                chunks.append(self._delta(index, {}, finish_reason(reason, self._calls.get(index, 0) > 0)))
        return chunks

    def close(self) -> list[dict[str, Any]]:
        """At EOF: the usage chunk, with the last usageMetadata seen (it may ride on the final event)."""
        if self._closed or not self.finished or self._usage_body is None:
            return []
        self._closed = True
        chunk = self._chunk([])
        chunk["usage"] = self._usage_body
        return [chunk]
