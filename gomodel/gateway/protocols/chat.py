"""POST /v1/chat/completions: the adapter's request, its answer with `provider` named, its chunks relayed
(a usage chunk only for a client that asked for one)."""

import orjson

from ..validation import validate_chat
from .base import BaseExchange

DONE = b"data: [DONE]\n\n"


class ChatExchange(BaseExchange):
    endpoint = "/v1/chat/completions"
    __slots__ = ()
    validate = staticmethod(validate_chat)

    def messages(self) -> list[dict]:
        return self.body["messages"]

    def build(self, adapter, target, model):
        return adapter.build_chat_request(self.body, target, model, self.stream)

    def read(self, adapter, record, content: bytes):
        data, usage = adapter.parse_chat_response(content)
        data["provider"] = record.target.name
        record.usage = usage
        if usage is None:
            record.relay_completion(data)
        return orjson.dumps(data), None

    def writer(self, adapter, record):
        options = self.body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        return ChunkWriter(adapter.StreamParser(record.model), record, include_usage)


class ChunkWriter:
    """The adapter's chat chunks as they come, each naming its provider."""

    __slots__ = ("parser", "record", "provider", "include_usage")

    def __init__(self, parser, record, include_usage: bool):
        self.parser = parser
        self.record = record
        self.provider = record.target.name
        self.include_usage = include_usage

    @property
    def usage(self):
        return self.parser.usage

    @property
    def complete(self) -> bool:
        return self.parser.complete

    def start(self) -> bytes:
        return b""

    def feed(self, event, data: bytes) -> bytes:
        return self._encode(self.parser.feed(event, data))

    def finish(self) -> bytes:
        tail = self._encode(self.parser.close())
        return tail + DONE if self.parser.complete else tail

    def fail(self, message: str, code: str, kind: str) -> bytes:
        return b"data: " + orjson.dumps({"error": {"type": kind, "message": message, "param": None,
                                                   "code": code}}) + b"\n\n"

    def answer(self):
        return None

    def _encode(self, chunks: list[dict]) -> bytes:
        out = []
        record = self.record
        for chunk in chunks:
            chunk["provider"] = self.provider
            if not self.include_usage and "usage" in chunk:
                # The gateway always asks for usage; a client that did not ask never sees it.
                if chunk.pop("usage") is not None and not chunk.get("choices"):
                    continue
            record.relay(chunk)
            out.append(b"data: " + orjson.dumps(chunk) + b"\n\n")
        return b"".join(out)

