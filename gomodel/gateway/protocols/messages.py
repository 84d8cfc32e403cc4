"""Anthropic's Messages (`POST /v1/messages`, `POST /v1/messages/count_tokens`).

An Anthropic target gets the client's body natively and its answer is relayed as it came (parsed on the
side for usage); any other target is reached through its chat adapter, translated both ways by
providers.anthropic.ingress. Errors use Anthropic's envelope (ingress/anthropic_errors.py)."""

import asyncio
from collections.abc import Awaitable
from typing import Any, NoReturn

import orjson

from accounting.usage.estimate import estimate_prompt_tokens
from providers.adapter_protocol import ChatAdapter, StreamParser
from providers.anthropic import StreamParser as AnthropicStreamParser
from providers.anthropic.ingress import (
    EventWriter,
    chat_user,
    error_event,
    estimate_messages,
    message_from_chat,
    native_request,
    to_chat,
)
from providers.anthropic.response import convert_usage
from providers.base import Target, UpstreamRequest

from ..errors import RATE_LIMIT
from ..http import Request
from ..ingress import anthropic_errors
from ..ingress.messages_validation import validate_count_tokens, validate_messages
from ..usage_record import UsageRecord
from .base import BaseExchange, ChunkTranslator, StreamWriterBase

FORWARDED_HEADERS = (b"anthropic-version", b"anthropic-beta")


def _client_headers(req: Request) -> dict[str, str]:
    return {name.decode(): value for name in FORWARDED_HEADERS if (value := req.header(name))}


def stream_error(message: str, code: str, kind: str) -> bytes:
    """Anthropic's `error` event for a stream the gateway ends (its message already scrubbed)."""
    return error_event("rate_limit_error" if kind == RATE_LIMIT else anthropic_errors.error_type(502, code), message)


class MessagesExchange(BaseExchange):
    endpoint = "/v1/messages"
    cacheable = True
    user_path = ("metadata", "user_id")  # Anthropic's metadata holds only the end user
    validate = staticmethod(validate_messages)
    __slots__ = ("headers", "translated")

    def __init__(self, req: Request, body: dict[str, Any]) -> None:
        super().__init__(req, body)
        self.headers = _client_headers(req)
        # the chat body, built once, the first time a non-Anthropic target is tried
        self.translated: dict[str, Any] | None = None

    def messages(self) -> list[dict[str, Any]]:
        return estimate_messages(self.body)

    def body_attribution(self) -> tuple[Any, Any]:
        labels, user = super().body_attribution()
        # Anthropic takes a user_id of up to 256 characters and Claude Code sends a ~150-character JSON object:
        # a longer one than the gateway keeps is recorded as its SHA-256 (as the translation to chat sends it),
        # not refused. The x-gomodel-user header, the gateway's own, is held to the bound.
        return labels, chat_user(user) if isinstance(user, str) else user

    def build(self, adapter: ChatAdapter, target: Target, model: str) -> UpstreamRequest:
        if target.wire == "anthropic":
            return native_request(self.body, target, model, self.headers)
        if self.translated is None:
            self.translated = to_chat(self.body, self.stream)
        return adapter.build_chat_request(self.translated, target, model, self.stream)

    def read(self, adapter: ChatAdapter, record: UsageRecord, content: bytes) -> tuple[bytes, None]:
        if record.target.wire == "anthropic":  # Anthropic's Message goes to the client byte for byte
            data = orjson.loads(content)
            usage = data.get("usage") if isinstance(data, dict) else None
            if not isinstance(usage, dict) or not isinstance(data.get("content"), list):
                raise ValueError("the Anthropic message has no usage or no content list")
            record.usage = convert_usage(usage)[1]
            return content, None
        data, usage = adapter.parse_chat_response(content)
        message = message_from_chat(data, usage, record.model)
        record.usage = usage
        if usage is None:
            record.relay_completion(data)
        return orjson.dumps(message), None

    def writer(self, adapter: ChatAdapter, record: UsageRecord) -> "NativeEvents | TranslatedEvents":
        if record.target.wire == "anthropic":
            return NativeEvents(AnthropicStreamParser(record.model), record)
        return TranslatedEvents(adapter.StreamParser(record.model), record)


class NativeEvents(StreamWriterBase[AnthropicStreamParser]):
    """Anthropic's events relayed as they came (their data untouched), parsed on the side; an upstream
    `error` event is not relayed as it came: the relay ends the stream with a scrubbed one."""

    __slots__ = ()
    fail = staticmethod(stream_error)

    def feed(self, event: str | None, data: bytes) -> bytes:
        for chunk in self.parser.feed(event, data):
            self.record.relay(chunk)
        lines = b"".join(b"data: " + line + b"\n" for line in data.split(b"\n"))
        return (b"event: " + event.encode() + b"\n" if event else b"") + lines + b"\n"

    def finish(self) -> bytes:
        self.parser.close()
        return b""


class TranslatedEvents(ChunkTranslator):
    """Chat chunks from any other provider, as Anthropic's event sequence."""

    __slots__ = ("events",)
    fail = staticmethod(stream_error)

    def __init__(self, parser: StreamParser, record: UsageRecord) -> None:
        super().__init__(parser, record)
        self.events = EventWriter(record.model)

    def encode(self, chunk: dict[str, Any]) -> bytes:
        return b"".join(self.events.feed(chunk))

    def closing(self) -> bytes:
        return b"".join(self.events.finish(self.parser.usage))


class CountTokensExchange(BaseExchange):
    """An Anthropic target counts natively (free at Anthropic, so no usage event); any other is estimated
    (accounting/estimate.py), off the event loop since tokenizing grows with the input. Allow-lists, budgets
    (spent or not) and the request limits apply; it reserves nothing."""

    endpoint = "/v1/messages/count_tokens"
    billed = False
    validate = staticmethod(validate_count_tokens)
    __slots__ = ("headers",)

    def __init__(self, req: Request, body: dict[str, Any]) -> None:
        super().__init__(req, body)
        self.stream = False
        self.headers = _client_headers(req)

    def messages(self) -> list[dict[str, Any]]:
        return estimate_messages(self.body)

    def candidates(self, chain: list[Any]) -> list[Any]:
        if chain[0][0].wire != "anthropic":
            return chain
        return [(target, model) for target, model in chain if target.wire == "anthropic"]

    def local_answer(self, target: Target, model: str) -> Awaitable[bytes] | None:
        if target.wire == "anthropic":
            return None
        return self._estimate(model)

    async def _estimate(self, model: str) -> bytes:
        tokens = await asyncio.to_thread(lambda: estimate_prompt_tokens(estimate_messages(self.body), model))
        return orjson.dumps({"input_tokens": tokens})

    def build(self, adapter: ChatAdapter, target: Target, model: str) -> UpstreamRequest:
        return native_request(self.body, target, model, self.headers, "messages/count_tokens")

    def read(self, adapter: ChatAdapter, record: UsageRecord, content: bytes) -> tuple[bytes, None]:
        data = orjson.loads(content)
        if not isinstance(data, dict) or not isinstance(data.get("input_tokens"), int):
            raise ValueError("no input_tokens in the answer")
        return content, None

    def writer(self, adapter: ChatAdapter, record: UsageRecord) -> NoReturn:
        raise AssertionError("count_tokens never streams")
