"""POST /v1/chat/completions: the adapter's request, its answer with `provider` named, its chunks relayed
(a usage chunk only for a client that asked for one)."""

from typing import Any, cast

import orjson

from providers.adapter_protocol import ChatAdapter, StreamParser
from providers.base import Target, UpstreamRequest

from ..usage_record import UsageRecord
from ..validation import validate_chat
from .base import BaseExchange, ChunkTranslator

DONE = b"data: [DONE]\n\n"


class ChatExchange(BaseExchange):
    endpoint = "/v1/chat/completions"
    cacheable = True
    labels_field, user_path = "metadata", ("user",)
    __slots__ = ()
    validate = staticmethod(validate_chat)

    def messages(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self.body["messages"])

    def build(self, adapter: ChatAdapter, target: Target, model: str) -> UpstreamRequest:
        return adapter.build_chat_request(self.body, target, model, self.stream)

    def read(self, adapter: ChatAdapter, record: UsageRecord, content: bytes) -> tuple[bytes, None]:
        data, usage = adapter.parse_chat_response(content)
        data["provider"] = record.target.name
        record.usage = usage
        if usage is None:
            record.relay_completion(data)
        return orjson.dumps(data), None

    def writer(self, adapter: ChatAdapter, record: UsageRecord) -> "ChunkWriter":
        options = self.body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        return ChunkWriter(adapter.StreamParser(record.model), record, include_usage)


class ChunkWriter(ChunkTranslator):
    """The adapter's chat chunks as they come, each naming its provider."""

    __slots__ = ("provider", "include_usage")

    def __init__(self, parser: StreamParser, record: UsageRecord, include_usage: bool) -> None:
        super().__init__(parser, record)
        self.provider = record.target.name
        self.include_usage = include_usage

    def encode(self, chunk: dict[str, Any]) -> bytes:
        chunk["provider"] = self.provider
        if not self.include_usage and "usage" in chunk:
            # The gateway always asks for usage; a client that did not ask never sees it.
            if chunk.pop("usage") is not None and not chunk.get("choices"):
                return b""
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def closing(self) -> bytes:
        return DONE

    def fail(self, message: str, code: str, kind: str) -> bytes:
        return b"data: " + orjson.dumps({"error": {"type": kind, "message": message, "param": None,
                                                   "code": code}}) + b"\n\n"
