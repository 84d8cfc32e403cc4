"""OpenAI's Responses (POST /v1/responses): a provider with its own Responses API gets the request as is,
any other gets it translated to chat completions (through its own adapter) and its answer translated
back. A stored response is written after the client has its answer (stored_responses.PendingWrite)."""

import time
from typing import Any

import orjson

from providers.adapter_protocol import ChatAdapter, StreamParser
from providers.base import StreamError, Target, UpstreamRequest, scrub_secrets
from providers.openai_compat import responses as wire

from ..auth import Principal
from ..http import Request
from ..responses_validation import validate_responses
from ..stored_responses import PendingWrite, load_previous
from ..usage_record import UsageRecord
from .base import BaseExchange, ChunkTranslator, StreamWriterBase


class ResponsesExchange(BaseExchange):
    endpoint = "/v1/responses"
    cacheable = True
    labels_field, user_path = "metadata", ("user",)
    validate = staticmethod(validate_responses)
    __slots__ = ("items", "id", "created_at", "chat_body", "pending")

    def __init__(self, req: Request, body: dict[str, Any]) -> None:
        super().__init__(req, body)
        self.items: list[dict[str, Any]] = []
        self.id = wire.new_id("resp")
        self.created_at = int(time.time())
        self.chat_body: dict[str, Any] | None = None
        self.pending: PendingWrite | None = None

    async def prepare(self, principal: Principal) -> None:
        body = self.body
        if body.get("store", True) is not False:
            self.pending = PendingWrite(principal, self.id)
        items = wire.input_items(body["input"]) if body.get("input") is not None else []
        if body.get("previous_response_id"):
            # One DB read (not the warm default path): the stored context goes first, on any provider.
            items = await load_previous(principal, body["previous_response_id"]) + items
        self.items = items

    def messages(self) -> list[dict[str, Any]]:
        return wire.to_chat_messages(self.body.get("instructions"), self.items, strict=False)

    def max_output(self) -> Any:
        return self.body.get("max_output_tokens")

    def build(self, adapter: ChatAdapter, target: Target, model: str) -> UpstreamRequest:
        if wire.supports_native(target):
            history = self.items if self.body.get("previous_response_id") else None
            return wire.build_native_request(self.body, history, target, model, self.stream)
        if self.chat_body is None:
            self.chat_body = wire.to_chat_body(self.body, self.items, self.stream)
        return adapter.build_chat_request(self.chat_body, target, model, self.stream)

    def read(self, adapter: ChatAdapter, record: UsageRecord, content: bytes) -> tuple[bytes, dict[str, Any]]:
        target = record.target
        if wire.supports_native(target):
            data = orjson.loads(content)
            if not isinstance(data, dict) or not isinstance(data.get("output"), list):
                raise ValueError("a response object needs an 'output' array")
            usage = wire.usage_from_responses(data.get("usage"))
            data["id"] = self.id
            data["provider"] = target.name
            data["previous_response_id"] = self.body.get("previous_response_id")
        else:
            chat, usage = adapter.parse_chat_response(content)
            output, status, incomplete = wire.from_chat_response(
                chat, wire.namespaced_functions(self.body.get("tools")))
            data = wire.response_object(self.body, self.id, self.created_at, chat.get("model") or record.model,
                                        status, output, wire.usage_to_responses(usage), target.name,
                                        incomplete=incomplete)
        record.usage = usage
        if usage is None:
            for text in _output_text(data["output"]):
                record.relay_text(text)
        return orjson.dumps(data), data

    def writer(self, adapter: ChatAdapter, record: UsageRecord) -> "NativeEvents | TranslatedEvents":
        if wire.supports_native(record.target):
            return NativeEvents(self, record)
        return TranslatedEvents(self, adapter.StreamParser(record.model), record)

    def answered(self, answer: dict[str, Any] | None) -> None:
        if self.pending is not None:
            if answer is not None:
                self.pending.write(self.items, answer, self.body.get("previous_response_id"))
            else:
                self.pending.abandon()


def _output_text(output: list[Any]) -> list[str]:
    texts: list[str] = []
    for item in output:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("arguments"), str):
            texts.append(item["arguments"])
        for part in item.get("content") or ():
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
    return texts


class TranslatedEvents(ChunkTranslator):
    """Chat chunks from any provider without a Responses API, as the Responses event sequence."""

    __slots__ = ("translator", "final")

    def __init__(self, exchange: ResponsesExchange, parser: StreamParser, record: UsageRecord) -> None:
        super().__init__(parser, record)
        self.translator = wire.StreamTranslator(exchange.body, exchange.id, record.model, record.target.name)
        self.final: dict[str, Any] | None = None

    def start(self) -> bytes:
        return b"".join(wire.sse(event) for event in self.translator.start())

    def encode(self, chunk: dict[str, Any]) -> bytes:
        return b"".join(wire.sse(event) for event in self.translator.feed(chunk))

    def closing(self) -> bytes:
        events = self.translator.finish(self.parser.usage)
        self.final = events[-1]["response"]
        return b"".join(wire.sse(event) for event in events)

    def fail(self, message: str, code: str, kind: str) -> bytes:
        return wire.sse(self.translator.fail(message, code, self.parser.usage))

    def answer(self) -> dict[str, Any] | None:
        return self.final


class NativeEvents(StreamWriterBase[wire.NativeStreamReader]):
    """A native upstream's Responses stream, renamed to the gateway's response id; its own
    `response.failed` is relayed with its error message scrubbed (and the call recorded as failed)."""

    __slots__ = ("exchange", "final")

    def __init__(self, exchange: ResponsesExchange, record: UsageRecord) -> None:
        super().__init__(wire.NativeStreamReader(exchange.id, record.target.name,
                                                 exchange.body.get("previous_response_id")), record)
        self.exchange = exchange
        self.final: dict[str, Any] | None = None

    def feed(self, event_name: str | None, data: bytes) -> bytes:
        reader = self.parser
        event = reader.feed(data)
        if event is None:
            return b""
        delta = event.get("delta")
        if isinstance(delta, str):
            self.record.relay_text(delta)
        if event.get("type") in reader.TERMINAL:
            response = event["response"]
            if event["type"] == "response.failed":
                self._scrub(response)
            else:
                self.final = response
        return wire.sse(event)

    def _scrub(self, response: dict[str, Any]) -> None:
        target = self.record.target
        error = response.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            error["message"] = scrub_secrets(error["message"][:4000], target.api_key, target.base_url)[:500]
        elif error is not None:
            response["error"] = {"code": "upstream_error", "message": "The provider failed the response."}

    def finish(self) -> bytes:
        if self.parser.status == "failed":  # the upstream's own response.failed, relayed (scrubbed) as it came
            raise UpstreamFailed()
        return b""

    def fail(self, message: str, code: str, kind: str) -> bytes:
        if self.parser.status == "failed":
            return b""  # its own terminal event already went out
        return wire.sse(self.parser.failed(message, code, self.exchange.body, self.record.model,
                                           self.exchange.created_at))

    def answer(self) -> dict[str, Any] | None:
        return self.final


class UpstreamFailed(StreamError):
    """A native stream that ended with the upstream's own response.failed: recorded as a 502."""

    def __init__(self) -> None:
        super().__init__("the provider failed the response", code="upstream_response_failed")
