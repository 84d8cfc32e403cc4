"""The one run function and the one stream relay: every /v1 call endpoint (chat, embeddings, Messages,
count_tokens, Responses) is `run(req, Protocol)`. Authenticate, read and validate the body, route, enter the
Call (allow-lists, budget, rate limits), send upstream with failover, then either answer whole (read and
mapped) or relay the stream through the protocol's writer with the disconnect watcher, the capped SSE
decoder, the budget guard, cancellation, the 502/504 mapping and the scrubbed terminal error; settle."""

import asyncio
from typing import Any, cast

from django.conf import settings

from providers.adapter_protocol import ChatAdapter
from providers.base import SSEDecoder, StreamError, Target, UpstreamError, scrub_secrets

from .. import metrics, upstream_errors
from ..budgets import BudgetCut, bill_cut, cut_error
from ..errors import PROVIDER, RATE_LIMIT, GatewayError
from ..http import SSE_HEADERS, Request
from ..routing import candidates
from ..runtime import get_runtime
from ..upstream import refused, send_upstream, unreadable
from ..upstream_client import UpstreamResponse
from ..upstream_errors import DeadlineExceeded
from ..usage_record import UsageRecord
from .call import Call
from .protocol import Exchange, StreamWriter


async def run(req: Request, kind: type[Exchange]) -> None:
    principal = None
    try:
        runtime = get_runtime()
        principal = await runtime.keys.authenticate(req.headers)
        await _run(req, kind, runtime, principal)
    except GatewayError as error:  # refused before any upstream attempt: no usage event, one access line
        metrics.refused_line(req, principal, error)
        raise


async def _run(req: Request, kind: type[Exchange], runtime: Any, principal: Any) -> None:
    exchange = await kind.receive(req)  # the body read and validated (400), as the protocol takes it
    answer = None
    try:
        await exchange.prepare(principal)
        chain = exchange.candidates(await candidates(runtime.registry, runtime.breaker, exchange.model,
                                                     exchange.provider_hint))
        async with Call(req, runtime, principal, exchange, chain) as call:
            local = exchange.local_answer(*call.chain[0])
            if local is not None:
                await req.respond(200, await local)
                return
            response, adapter = await send_upstream(runtime, call.chain, exchange.build, exchange.stream,
                                                    cast(UsageRecord, call.record))  # entered: set
            if exchange.stream:
                writer = exchange.writer(adapter, cast(UsageRecord, call.record))
                await relay_stream(call, writer, response)
                if cast(UsageRecord, call.record).status == 200:
                    answer = writer.answer()
            else:
                answer = await answer_whole(call, adapter, response)
    finally:
        exchange.answered(answer)


async def answer_whole(call: Call, adapter: ChatAdapter, response: UpstreamResponse) -> dict[str, Any] | None:
    """A complete answer, mapped: a 200 that is a refusal → that upstream error; unreadable → 502. Returns
    the answer for a protocol that keeps it."""
    record = cast(UsageRecord, call.record)  # entered: set
    try:
        body, answer = call.protocol.read(adapter, record, response.content)
    except UpstreamError as err:
        raise refused(record.target, err) from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise unreadable(record.target, exc) from None
    await call.req.respond(200, body, content=call.protocol.answer_headers(response))
    return answer


async def relay_stream(call: Call, writer: StreamWriter, response: UpstreamResponse) -> None:
    """What one upstream read yields goes out in one write (one syscall, not one per event); what is
    encoded but not written when a failure is raised goes out with the terminal event."""
    req, record = call.req, cast(UsageRecord, call.record)  # entered: set
    guard = call.guard()
    task = cast("asyncio.Task[None]", asyncio.current_task())  # a request runs in a task
    watcher = None
    pending: list[bytes] = []
    try:
        decoder = SSEDecoder(settings.UPSTREAM_MAX_SSE_EVENT_BYTES)
        await req.start(200, SSE_HEADERS)
        watcher = asyncio.ensure_future(watch_disconnect(req, task, record))
        pending.append(writer.start())
        try:
            async for raw in response.aiter_bytes():
                for event, data in decoder.feed(raw):
                    pending.append(writer.feed(event, data))
                out = b"".join(pending)
                pending.clear()
                if out:
                    record.first_byte()
                    await req.write(out)
                if guard is not None and await guard.exceeded():
                    raise BudgetCut()
            for event, data in decoder.close():
                pending.append(writer.feed(event, data))
            pending.append(writer.finish())  # what the upstream's end flushes; the closing events if complete
            if not writer.complete:
                raise StreamError("the upstream stream ended before the response was complete",
                                  code="upstream_stream_incomplete")
            record.usage = writer.usage
        except BudgetCut:
            # The protocol's own terminal event; billed for what the client got (the upstream is closed below).
            cut = cut_error()
            terminal = writer.fail(cut.message, cast(str, cut.code), RATE_LIMIT)  # cut_error() names its code
            bill_cut(record)
            watcher.cancel()
            await req.finish(b"".join(pending) + terminal)
            return
        except (StreamError, upstream_errors.HTTPError, ValueError) as exc:
            record.usage = writer.usage
            record.status, record.error_type = 504 if isinstance(exc, DeadlineExceeded) else 502, PROVIDER
            message, code = stream_failure(record.target, exc)
            watcher.cancel()
            await req.finish(b"".join(pending) + writer.fail(message, code, PROVIDER))
            return
        watcher.cancel()
        await req.finish(b"".join(pending))
    except asyncio.CancelledError:
        if record.error_type != "client_disconnected":
            raise
        task.uncancel()  # the watcher cancelled us: the client hung up; record what was generated
        if record.usage is None:
            record.usage = writer.usage
    finally:
        if watcher is not None:
            watcher.cancel()
        await response.aclose()


async def watch_disconnect(req: Request, task: "asyncio.Task[None]", record: UsageRecord) -> None:
    while True:
        message = await req.receive()
        if message["type"] == "http.disconnect":
            record.status, record.error_type = 499, "client_disconnected"
            task.cancel()
            return


def stream_failure(target: Target, exc: Exception) -> tuple[str, str]:
    """What a client is told when a stream breaks: never the upstream's text as it came (scrub_secrets)."""
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
