"""The Responses service (POST /v1/responses): route as chat does; a provider with its own Responses
API gets the request as is, any other one gets it translated to chat completions (through its own
adapter) and its answer translated back. Exactly one usage event per request, as for chat; a stored
response is written after the client has its answer."""

import asyncio
import time

import orjson

from providers.base import SSEDecoder, StreamError, UpstreamError
from providers.openai_compat import responses as wire

from . import upstream_errors
from .budgets import BudgetCut, StreamGuard, bill_cut, cut_error
from .chat import stream_failure, watch_disconnect
from .errors import PROVIDER
from .http import SSE_HEADERS, Request
from .http_client import UpstreamResponse
from .limits import chat_tokens, governed
from .routing import candidates
from .stored_responses import PendingWrite, load_previous
from .upstream import refused, send_upstream, unreadable
from .usage_record import UsageRecord, recorded

ENDPOINT = "/v1/responses"


class Exchange:
    """One POST /v1/responses: what was asked, under which id, and what to store once answered."""

    def __init__(self, body: dict, items: list[dict]):
        self.body = body
        self.items = items
        self.id = wire.new_id("resp")
        self.created_at = int(time.time())
        self.stream = body.get("stream") is True
        self.chat_body = None

    def build(self, adapter, target, model):
        if wire.supports_native(target):
            history = self.items if self.body.get("previous_response_id") else None
            return wire.build_native_request(self.body, history, target, model, self.stream)
        if self.chat_body is None:
            self.chat_body = wire.to_chat_body(self.body, self.items, self.stream)
        return adapter.build_chat_request(self.chat_body, target, model, self.stream)


async def run_responses(req: Request, runtime, body: dict) -> None:
    items = wire.input_items(body["input"]) if body.get("input") is not None else []
    if body.get("previous_response_id"):
        # One DB read (not the warm default path): the stored context goes first, on any provider.
        items = await load_previous(req.auth, body["previous_response_id"]) + items
    chain = await candidates(runtime.registry, runtime.breaker, body["model"], body.get("provider"))
    messages = wire.to_chat_messages(body.get("instructions"), items, strict=False)
    tokens = chat_tokens({"messages": messages, "max_tokens": body.get("max_output_tokens")})
    async with governed(req, runtime, body["model"], body.get("provider"), chain, tokens) as chain:
        exchange = Exchange(body, items)
        target, model = chain[0]
        record = UsageRecord(req, target, body["model"], model, ENDPOINT, exchange.stream, messages)
        answer = None
        pending = PendingWrite(req.auth, exchange.id) if body.get("store", True) is not False else None
        try:
            async with recorded(req, runtime, record):
                guard = StreamGuard.maybe(record, runtime) if exchange.stream else None
                if guard is not None:
                    guard.check_prompt(record.budget)
                response, adapter = await send_upstream(runtime, chain, exchange.build, exchange.stream, record)
                native = wire.supports_native(record.target)
                if not exchange.stream:
                    answer = await _complete(req, exchange, adapter, response, record, native)
                elif native:
                    answer = await _relay_native(req, exchange, response, record, guard)
                else:
                    answer = await _translate_stream(req, exchange, adapter, response, record, guard)
        finally:
            if pending is not None:
                if answer is not None:
                    pending.write(items, answer, body.get("previous_response_id"))
                else:
                    pending.abandon()


async def _complete(req: Request, exchange: Exchange, adapter, response: UpstreamResponse, record: UsageRecord,
                    native: bool) -> dict:
    target = record.target
    try:
        if native:
            data = orjson.loads(response.content)
            if not isinstance(data, dict) or not isinstance(data.get("output"), list):
                raise ValueError("a response object needs an 'output' array")
            usage = wire.usage_from_responses(data.get("usage"))
            data["id"] = exchange.id
            data["provider"] = target.name
            data["previous_response_id"] = exchange.body.get("previous_response_id")
        else:
            chat, usage = adapter.parse_chat_response(response.content)
            output, status, incomplete = wire.from_chat_response(chat)
            data = wire.response_object(exchange.body, exchange.id, exchange.created_at,
                                        chat.get("model") or record.model, status, output,
                                        wire.usage_to_responses(usage), target.name, incomplete=incomplete)
    except UpstreamError as err:
        raise refused(target, err) from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise unreadable(target, exc) from None
    record.usage = usage
    if usage is None:
        for text in _output_text(data["output"]):
            record.relay_text(text)
    await req.respond(200, orjson.dumps(data))
    return data


def _output_text(output: list) -> list[str]:
    texts = []
    for item in output:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("arguments"), str):
            texts.append(item["arguments"])
        for part in item.get("content") or ():
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
    return texts


async def _streaming(req: Request, record: UsageRecord, response: UpstreamResponse, relay, fail):
    """Shared by both stream kinds: start the SSE answer, watch for a hang-up, run `relay`, and on an
    upstream failure mid-stream end the stream with `fail(message, code)`'s terminal event."""
    task = asyncio.current_task()
    watcher = None
    try:
        await req.start(200, SSE_HEADERS)
        watcher = asyncio.ensure_future(watch_disconnect(req, task, record))
        try:
            return await relay()
        except BudgetCut:
            # The protocol's own terminal event, response.failed; the upstream is closed below.
            cut = cut_error()
            terminal = wire.sse(fail(cut.message, cut.code))
            bill_cut(record)  # after fail(), which takes the upstream's partial usage
            watcher.cancel()
            await req.finish(terminal)
            return None
        except (StreamError, upstream_errors.HTTPError, ValueError) as exc:
            record.status, record.error_type = 502, PROVIDER
            message, code = stream_failure(record.target, exc)
            watcher.cancel()
            await req.finish(wire.sse(fail(message, code)))
            return None
    except asyncio.CancelledError:
        if record.error_type != "client_disconnected":
            raise
        task.uncancel()  # the watcher cancelled us: the client hung up; record what was generated
        return None
    finally:
        if watcher is not None:
            watcher.cancel()
        await response.aclose()


async def _send(req: Request, record: UsageRecord, events: list[dict]):
    for event in events:
        record.first_byte()
        await req.write(wire.sse(event))


async def _translate_stream(req: Request, exchange: Exchange, adapter, response: UpstreamResponse,
                            record: UsageRecord, guard: StreamGuard | None) -> dict | None:
    parser = adapter.StreamParser(record.model)
    translator = wire.StreamTranslator(exchange.body, exchange.id, record.model, record.target.name)

    async def relay():
        decoder = SSEDecoder()
        await _send(req, record, translator.start())

        async def feed(pairs):
            for event, data in pairs:
                for chunk in parser.feed(event, data):
                    record.relay(chunk)
                    await _send(req, record, translator.feed(chunk))

        async for raw in response.aiter_bytes():
            await feed(decoder.feed(raw))
            if guard is not None and await guard.exceeded():
                raise BudgetCut()
        await feed(decoder.close())
        for chunk in parser.close():
            record.relay(chunk)
            await _send(req, record, translator.feed(chunk))
        if not parser.complete:
            raise StreamError("the upstream stream ended before the response was complete",
                              code="upstream_stream_incomplete")
        record.usage = parser.usage
        events = translator.finish(parser.usage)
        await req.finish(b"".join(wire.sse(event) for event in events))
        return events[-1]["response"]

    def fail(message, code):
        record.usage = parser.usage
        return translator.fail(message, code, parser.usage)

    try:
        return await _streaming(req, record, response, relay, fail)
    finally:
        if record.usage is None:
            record.usage = parser.usage


async def _relay_native(req: Request, exchange: Exchange, response: UpstreamResponse, record: UsageRecord,
                        guard: StreamGuard | None) -> dict | None:
    reader = wire.NativeStreamReader(exchange.id, record.target.name, exchange.body.get("previous_response_id"))
    final = {}

    async def relay():
        decoder = SSEDecoder()

        async def feed(pairs):
            for _, data in pairs:
                event = reader.feed(data)
                if event is None:
                    continue
                delta = event.get("delta")
                if isinstance(delta, str):
                    record.relay_text(delta)
                if event.get("type") in reader.TERMINAL:
                    final["response"] = event["response"]
                await _send(req, record, [event])

        async for raw in response.aiter_bytes():
            await feed(decoder.feed(raw))
            if guard is not None and await guard.exceeded():
                raise BudgetCut()
        await feed(decoder.close())
        if not reader.complete:
            raise StreamError("the upstream stream ended before the response was complete",
                              code="upstream_stream_incomplete")
        record.usage = reader.usage
        await req.finish()
        if reader.status == "failed":  # the upstream's own response.failed, relayed as it came
            record.status, record.error_type = 502, PROVIDER
            return None
        return final["response"]

    def fail(message, code):
        record.usage = reader.usage
        return reader.failed(message, code, exchange.body, record.model, exchange.created_at)

    try:
        return await _streaming(req, record, response, relay, fail)
    finally:
        if record.usage is None:
            record.usage = reader.usage
