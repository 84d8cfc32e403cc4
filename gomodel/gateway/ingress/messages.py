"""The Anthropic Messages service (`POST /v1/messages`, `POST /v1/messages/count_tokens`): chat's routing,
failover, limits and usage event, in Anthropic's protocol.

An Anthropic target gets the client's body natively and its answer is relayed as it came (parsed on
the side for usage); any other target is reached through its chat adapter, translated both ways by
providers.anthropic.ingress.
"""

import asyncio

import orjson
from django.conf import settings

from accounting.usage.estimate import estimate_prompt_tokens
from providers.anthropic import StreamParser as AnthropicStreamParser
from providers.anthropic.ingress import (
    EventWriter,
    error_event,
    estimate_messages,
    message_from_chat,
    native_request,
    to_chat,
)
from providers.anthropic.response import convert_usage
from providers.base import SSEDecoder, StreamError, UpstreamError

from .. import upstream_errors
from ..budgets import BudgetCut, StreamGuard, bill_cut, cut_error
from ..chat import stream_failure, watch_disconnect
from ..errors import PROVIDER
from ..http import SSE_HEADERS, Request
from ..http_client import UpstreamResponse
from ..limits import chat_tokens, governed
from ..routing import candidates
from ..upstream import refused, send_upstream, unreadable
from ..upstream_errors import DeadlineExceeded
from ..usage_record import UsageRecord, recorded
from .anthropic_errors import error_type

ENDPOINT = "/v1/messages"
FORWARDED_HEADERS = (b"anthropic-version", b"anthropic-beta")


class MessagesRecord(UsageRecord):
    """A usage record whose prompt estimate is built from the Anthropic body only when one is needed
    (a stream cut before its usage): not on every request."""

    __slots__ = ("body",)

    def __init__(self, req: Request, target, model: str, body: dict, stream: bool, endpoint: str = ENDPOINT):
        super().__init__(req, target, body["model"], model, endpoint, stream, [])
        self.body = body

    def event(self):
        if self.usage is None and not self.messages:
            self.messages = estimate_messages(self.body)
        return super().event()


def _client_headers(req: Request) -> dict[str, str]:
    return {name.decode(): value for name in FORWARDED_HEADERS if (value := req.header(name))}


async def run_messages(req: Request, runtime, body: dict) -> None:
    chain = await candidates(runtime.registry, runtime.breaker, body["model"], body.get("provider"))
    stream = body.get("stream") is True
    headers = _client_headers(req)
    translated = []  # the chat body, built once, the first time a non-Anthropic target is tried

    def build(adapter, t, m):
        if t.wire == "anthropic":
            return native_request(body, t, m, headers)
        if not translated:
            translated.append(to_chat(body, stream))
        return adapter.build_chat_request(translated[0], t, m, stream)

    async with governed(req, runtime, body["model"], body.get("provider"), chain, _reserved_tokens(body)) as chain:
        target, model = chain[0]
        record = MessagesRecord(req, target, model, body, stream)
        async with recorded(req, runtime, record):
            guard = None
            if record.budget is not None:  # a budgeted caller: its prompt is priced before the upstream call
                record.messages = estimate_messages(body)
                guard = StreamGuard.maybe(record, runtime)
                if guard is not None:
                    guard.check_prompt(record.budget)
            response, adapter = await send_upstream(runtime, chain, build, stream, record)
            native = record.target.wire == "anthropic"
            if stream:
                await _relay_stream(req, adapter, response, record, native, guard)
            elif native:
                await _relay_message(req, response, record)
            else:
                await _translate_message(req, adapter, response, record)


def _reserved_tokens(body: dict) -> int:
    """What the rate limiter reserves against TPM, as for chat (chars/4 of the text, plus max_tokens); the
    system prompt is part of the prompt. Reconciled with the reported usage when the request ends."""
    system = body.get("system")
    messages = [{"role": "system", "content": system}, *body["messages"]] if system else body["messages"]
    return chat_tokens({"messages": messages, "max_tokens": body.get("max_tokens")})


async def _relay_message(req: Request, response: UpstreamResponse, record: UsageRecord):
    """Anthropic's Message goes to the client byte for byte; its usage is read for the record."""
    try:
        data = orjson.loads(response.content)
        usage = data.get("usage") if isinstance(data, dict) else None
        if not isinstance(usage, dict) or not isinstance(data.get("content"), list):
            raise ValueError("the Anthropic message has no usage or no content list")
    except ValueError as exc:
        raise unreadable(record.target, exc) from None
    record.usage = convert_usage(usage)[1]
    await req.respond(200, response.content)


async def _translate_message(req: Request, adapter, response: UpstreamResponse, record: UsageRecord):
    try:
        data, usage = adapter.parse_chat_response(response.content)
        message = message_from_chat(data, usage, record.model)
    except UpstreamError as err:
        raise refused(record.target, err) from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise unreadable(record.target, exc) from None
    record.usage = usage
    if usage is None:
        record.relay_completion(data)
    await req.respond(200, orjson.dumps(message))


def _frame(event: str | None, data: bytes) -> bytes:
    """One upstream event, re-framed as it came (its data untouched)."""
    lines = b"".join(b"data: " + line + b"\n" for line in data.split(b"\n"))
    return (b"event: " + event.encode() + b"\n" if event else b"") + lines + b"\n"


class _Relay:
    """Per stream: parse each upstream event (for usage and what was relayed) and write what the
    client sees: the event itself from Anthropic, translated events from anyone else."""

    __slots__ = ("req", "record", "parser", "writer", "upstream_error")

    def __init__(self, req: Request, record: UsageRecord, parser, native: bool):
        self.req = req
        self.record = record
        self.parser = parser
        self.writer = None if native else EventWriter(record.model)
        self.upstream_error = None  # Anthropic's own error event, relayed as the stream's last

    async def event(self, event: str | None, data: bytes):
        if self.writer is None:
            try:
                chunks = self.parser.feed(event, data)
            except StreamError:
                self.upstream_error = _frame(event, data)
                raise
            for chunk in chunks:
                self.record.relay(chunk)
            self.record.first_byte()
            await self.req.write(_frame(event, data))
        else:
            await self.chunks(self.parser.feed(event, data))

    async def chunks(self, chunks: list[dict]):
        for chunk in chunks:
            self.record.relay(chunk)
            events = self.writer.feed(chunk)
            if events:
                self.record.first_byte()
                await self.req.write(b"".join(events))

    async def close(self):
        if self.writer is None:
            self.parser.close()
            return
        await self.chunks(self.parser.close())
        if self.parser.complete:
            await self.req.write(b"".join(self.writer.finish(self.parser.usage)))


async def _relay_stream(req: Request, adapter, response: UpstreamResponse, record: UsageRecord, native: bool,
                        guard: StreamGuard | None = None):
    target = record.target
    task = asyncio.current_task()
    watcher = None
    relay = None
    try:
        relay = _Relay(req, record, AnthropicStreamParser(record.model) if native else adapter.StreamParser(
            record.model), native)
        decoder = SSEDecoder(settings.UPSTREAM_MAX_SSE_EVENT_BYTES)
        await req.start(200, SSE_HEADERS)
        watcher = asyncio.ensure_future(watch_disconnect(req, task, record))
        try:
            async for raw in response.aiter_bytes():
                for event, data in decoder.feed(raw):
                    await relay.event(event, data)
                if guard is not None and await guard.exceeded():
                    raise BudgetCut()
            for event, data in decoder.close():
                await relay.event(event, data)
            await relay.close()
            if not relay.parser.complete:
                raise StreamError("the upstream stream ended before the response was complete",
                                  code="upstream_stream_incomplete")
            record.usage = relay.parser.usage
        except BudgetCut:
            bill_cut(record)
            watcher.cancel()
            await req.finish(error_event("rate_limit_error", cut_error().message))
            return
        except (StreamError, upstream_errors.HTTPError, ValueError) as exc:
            record.usage = relay.parser.usage
            record.status, record.error_type = 504 if isinstance(exc, DeadlineExceeded) else 502, PROVIDER
            watcher.cancel()
            if relay.upstream_error is not None:
                await req.finish(relay.upstream_error)
                return
            message, code = stream_failure(target, exc)
            kind = "overloaded_error" if isinstance(exc, StreamError) and exc.code == "overloaded_error" else \
                error_type(502, code)
            await req.finish(error_event(kind, message))
            return
        watcher.cancel()
        await req.finish()
    except asyncio.CancelledError:
        if record.error_type != "client_disconnected":
            raise
        task.uncancel()  # the watcher cancelled us: the client hung up; record what was generated
        if record.usage is None and relay is not None:
            record.usage = relay.parser.usage
    finally:
        if watcher is not None:
            watcher.cancel()
        await response.aclose()


# -- count_tokens ---------------------------------------------------------------------------------------

def _estimate(body: dict, model: str) -> int:
    return estimate_prompt_tokens(estimate_messages(body), model)


async def run_count_tokens(req: Request, runtime, body: dict) -> None:
    """An Anthropic target counts natively (free at Anthropic, so no usage event); any other is estimated
    (accounting/estimate.py), off the event loop since tokenizing grows with the input."""
    chain = await candidates(runtime.registry, runtime.breaker, body["model"], body.get("provider"))
    # Allow-lists and the request limits apply; it reserves no tokens (nothing is generated).
    async with governed(req, runtime, body["model"], body.get("provider"), chain, 0) as chain:
        target, model = chain[0]
        if target.wire != "anthropic":
            tokens = await asyncio.to_thread(_estimate, body, model)
            await req.respond(200, orjson.dumps({"input_tokens": tokens}))
            return
        headers = _client_headers(req)
        record = MessagesRecord(req, target, model, body, False, ENDPOINT + "/count_tokens")  # never emitted
        anthropic = [(t, m) for t, m in chain if t.wire == "anthropic"]
        response, _ = await send_upstream(
            runtime, anthropic, lambda adapter, t, m: native_request(body, t, m, headers, "messages/count_tokens"),
            False, record)
    try:
        data = orjson.loads(response.content)
        if not isinstance(data, dict) or not isinstance(data.get("input_tokens"), int):
            raise ValueError("no input_tokens in the answer")
    except ValueError as exc:
        raise unreadable(record.target, exc) from None
    await req.respond(200, response.content)
