"""The chat-completions service: route, call the upstream through its adapter, answer in JSON or relay
SSE, and emit exactly one usage event however the request ends."""

import asyncio

import orjson
from django.conf import settings

from providers.base import SSEDecoder, StreamError, Target, UpstreamError, scrub_secrets

from . import upstream_errors
from .budgets import BudgetCut, StreamGuard, bill_cut, cut_error
from .errors import PROVIDER
from .http import SSE_HEADERS, Request
from .http_client import UpstreamResponse
from .limits import chat_tokens, governed
from .routing import candidates
from .upstream import refused, send_upstream, unreadable
from .upstream_errors import DeadlineExceeded
from .usage_record import UsageRecord, recorded

DONE = b"data: [DONE]\n\n"


async def run_chat(req: Request, runtime, body: dict) -> None:
    chain = await candidates(runtime.registry, runtime.breaker, body["model"], body.get("provider"))
    stream = body.get("stream") is True
    options = body.get("stream_options")
    include_usage = stream and isinstance(options, dict) and options.get("include_usage") is True
    async with governed(req, runtime, body["model"], body.get("provider"), chain, chat_tokens(body)) as chain:
        target, model = chain[0]
        record = UsageRecord(req, target, body["model"], model, "/v1/chat/completions", stream, body["messages"])
        async with recorded(req, runtime, record):
            guard = StreamGuard.maybe(record, runtime)
            if guard is not None:
                guard.check_prompt(record.budget)
            response, adapter = await send_upstream(
                runtime, chain, lambda adapter, t, m: adapter.build_chat_request(body, t, m, stream), stream,
                record)
            if stream:
                await _relay_stream(req, adapter, response, record, include_usage, guard)
            else:
                await _complete(req, adapter, response, record)


async def _complete(req: Request, adapter, response: UpstreamResponse, record: UsageRecord):
    target = record.target
    try:
        data, usage = adapter.parse_chat_response(response.content)
    except UpstreamError as err:
        raise refused(target, err) from None
    except (ValueError, TypeError, KeyError) as exc:
        raise unreadable(target, exc) from None
    data["provider"] = target.name
    record.usage = usage
    if usage is None:
        record.relay_completion(data)
    await req.respond(200, orjson.dumps(data))


async def _relay_stream(req: Request, adapter, response: UpstreamResponse, record: UsageRecord, include_usage: bool,
                        guard: StreamGuard | None = None):
    target = record.target
    task = asyncio.current_task()
    watcher = None
    parser = None
    pending: list[bytes] = []  # encoded SSE events not written yet
    try:
        parser = adapter.StreamParser(record.model)
        decoder = SSEDecoder(settings.UPSTREAM_MAX_SSE_EVENT_BYTES)
        await req.start(200, SSE_HEADERS)
        watcher = asyncio.ensure_future(watch_disconnect(req, task, record))
        name = target.name
        try:
            # What one upstream read yields goes out in one write (one syscall, not one per event);
            # what is encoded but not written when a failure is raised goes out with the error.
            async for raw in response.aiter_bytes():
                for event, data in decoder.feed(raw):
                    _encode_chunks(pending, record, parser.feed(event, data), name, include_usage)
                if pending:
                    out = b"".join(pending)
                    pending.clear()
                    await req.write(out)
                if guard is not None and await guard.exceeded():
                    raise BudgetCut()
            for event, data in decoder.close():
                _encode_chunks(pending, record, parser.feed(event, data), name, include_usage)
            _encode_chunks(pending, record, parser.close(), name, include_usage)
            if not parser.complete:
                raise StreamError("the upstream stream ended before the response was complete",
                                  code="upstream_stream_incomplete")
            record.usage = parser.usage
        except BudgetCut:
            bill_cut(record)  # the upstream is closed below
            watcher.cancel()
            await req.finish(b"data: " + orjson.dumps(cut_error().payload()) + b"\n\n")
            return
        except (StreamError, upstream_errors.HTTPError, ValueError) as exc:
            record.usage = parser.usage
            record.status, record.error_type = 504 if isinstance(exc, DeadlineExceeded) else 502, PROVIDER
            message, code = stream_failure(target, exc)
            watcher.cancel()
            await req.finish(b"".join(pending) + b"data: " + orjson.dumps(
                {"error": {"type": PROVIDER, "message": message, "param": None, "code": code}}) + b"\n\n")
            return
        watcher.cancel()
        await req.finish(b"".join(pending) + DONE)
    except asyncio.CancelledError:
        if record.error_type != "client_disconnected":
            raise
        task.uncancel()  # the watcher cancelled us: the client hung up; record what was generated
        if record.usage is None and parser is not None:
            record.usage = parser.usage
    finally:
        if watcher is not None:
            watcher.cancel()
        await response.aclose()


def _encode_chunks(out: list[bytes], record: UsageRecord, chunks: list[dict], provider: str, include_usage: bool):
    for chunk in chunks:
        chunk["provider"] = provider
        if not include_usage and "usage" in chunk:
            # The gateway always asks for usage; a client that did not ask never sees it.
            if chunk.pop("usage") is not None and not chunk.get("choices"):
                continue
        record.relay(chunk)
        record.first_byte()
        out.append(b"data: " + orjson.dumps(chunk) + b"\n\n")


async def watch_disconnect(req: Request, task: asyncio.Task, record: UsageRecord):
    while True:
        message = await req.receive()
        if message["type"] == "http.disconnect":
            record.status, record.error_type = 499, "client_disconnected"
            task.cancel()
            return


def stream_failure(target: Target, exc: Exception) -> tuple[str, str]:
    if isinstance(exc, StreamError):
        message = scrub_secrets(exc.message[:4000], target.api_key, target.base_url)[:500]
        return f"Provider '{target.name}' failed mid-stream: {message}", exc.code or "upstream_stream_error"
    if isinstance(exc, DeadlineExceeded):
        return f"Provider '{target.name}' streamed for longer than the gateway allows ({exc}).", "upstream_deadline"
    if isinstance(exc, upstream_errors.TimeoutException):
        return f"Provider '{target.name}' stopped sending mid-stream (timeout).", "upstream_timeout"
    if isinstance(exc, ValueError):
        return f"Provider '{target.name}' sent a stream event the gateway could not read.", "invalid_upstream_response"
    return f"The connection to provider '{target.name}' broke mid-stream.", "upstream_stream_broken"
