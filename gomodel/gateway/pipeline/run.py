"""The one run function and the one stream relay: every /v1 call endpoint (chat, embeddings, Messages,
count_tokens, Responses) is `run(req, Protocol)`. Authenticate, read and validate the body, route, enter the
Call (allow-lists, budget, rate limits), send upstream with failover, then either answer whole (read and
mapped) or relay the stream through the protocol's writer with the disconnect watcher, the capped SSE
decoder, the budget guard, cancellation, the 502/504 mapping and the scrubbed terminal error; settle.

The response cache (response_cache.py) is looked up when the Call is entered; a hit is replayed here through
the protocol's own `read` or stream writer (the stored upstream answer fed to it as if it had just come), and a
miss's complete answer is stored here: the upstream body, or the stream's events as the relay decoded them."""

import asyncio
import logging
from typing import Any, Protocol, cast

from django.conf import settings

from providers.adapter_protocol import ChatAdapter
from providers.adapters import adapter_for
from providers.base import SSEDecoder, StreamError, Target, UpstreamError, scrub_secrets

from .. import metrics, upstream_errors
from ..attribution import LABELS_HEADER, NONE, USER_HEADER, attribute
from ..budgets import BudgetCut, bill_cut, cut_error
from ..errors import PROVIDER, RATE_LIMIT, GatewayError
from ..http import SSE_HEADERS, Request
from ..response_cache import Entry, Tape
from ..routing import candidates
from ..runtime import get_runtime
from ..upstream import refused, send_upstream, unreadable
from ..upstream_client import UpstreamResponse
from ..upstream_errors import DeadlineExceeded
from ..usage_record import UsageRecord
from .call import Call
from .protocol import Exchange, StreamWriter

log = logging.getLogger(__name__)


async def run(req: Request, kind: type[Exchange]) -> None:
    principal = None
    try:
        runtime = get_runtime()
        principal = await runtime.keys.authenticate(req.headers)
        await _run(req, kind, runtime, principal)
    except GatewayError as error:  # refused before any upstream attempt: no usage event, one access line
        metrics.refused_line(req, principal, error, error.attribution)
        raise


async def _run(req: Request, kind: type[Exchange], runtime: Any, principal: Any) -> None:
    exchange = await kind.receive(req)  # the body read and validated (400), as the protocol takes it
    attribution = NONE
    body_labels, body_user = exchange.body_attribution()
    # Inline, so that a call without any attribution runs no more code (the request walk's count).
    if principal.labels or body_labels is not None or body_user is not None or LABELS_HEADER in req.headers \
            or USER_HEADER in req.headers:  # labels or user out of bounds: 400, nothing counted or recorded
        attribution = attribute(req, principal, body_labels, body_user, exchange.labels_field,
                                ".".join(exchange.user_path))
    answer = None
    try:
        await exchange.prepare(principal)
        chain = exchange.candidates(await candidates(runtime.registry, runtime.breaker, exchange.model,
                                                     exchange.provider_hint))
        async with Call(req, runtime, principal, exchange, chain, attribution) as call:
            local = exchange.local_answer(*call.chain[0])
            if local is not None:
                await req.respond(200, await local)
                return
            record = cast(UsageRecord, call.record)  # entered: set
            cache = call.cache
            if cache is not None and cache.hit is not None:
                try:
                    answer = await replay(call, cache.hit)
                    return
                except (ValueError, TypeError, KeyError, AttributeError, UpstreamError) as exc:
                    # An entry this code cannot replay (nothing was sent yet): the call goes upstream after all.
                    log.warning("cached answer for request %s could not be replayed (%s)", call.request_id, exc)
                    cache.hit = record.cache = record.usage = None
            response, adapter = await send_upstream(runtime, call.chain, call.build, exchange.stream, record,
                                                    exchange.body)
            if exchange.stream:
                writer = exchange.writer(adapter, record)
                tape = cache.recorder() if cache is not None else None
                await relay_stream(call, writer, response, tape)
                if record.status == 200:
                    answer = writer.answer()
            else:
                answer = await answer_whole(call, adapter, response)
    except GatewayError as error:  # refused at admission (a budget, a limit): its access line names who
        error.attribution = attribution
        raise
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
    if call.cache is not None:
        await call.cache.store_json(record.target, record.model, response.content, answer)
    if call.trace is not None:
        call.trace.answer(body)
    await call.req.respond(200, body, content=call.protocol.answer_headers(response))
    return answer


async def replay(call: Call, entry: Entry) -> dict[str, Any] | None:
    """A cache hit, answered as a miss would be: the stored upstream body through the protocol's `read`, or the
    stored stream's events through its writer (the whole sequence made before anything is sent); the usage is
    what the replayed answer reports."""
    req, record, protocol = call.req, cast(UsageRecord, call.record), call.protocol  # entered: set
    adapter = adapter_for(record.target.wire)
    if entry.content is not None:
        body, answer = protocol.read(adapter, record, entry.content)
        record.first_byte()
        if call.trace is not None:
            call.trace.answer(body)
        await req.respond(200, body)
        return answer
    writer = protocol.writer(adapter, record)
    out = [writer.start()]
    for event, data in entry.events or ():  # an entry holds content or events
        out.append(writer.feed(event, data))
    out.append(writer.finish())
    if not writer.complete:
        raise ValueError("the stored stream is not complete")
    record.usage = writer.usage
    record.first_byte()
    await req.start(200, SSE_HEADERS)
    await req.finish(b"".join(out))
    return writer.answer()


async def relay_stream(call: Call, writer: StreamWriter, response: UpstreamResponse,
                       tape: Tape | None = None) -> None:
    """What one upstream read yields goes out in one write (one syscall, not one per event); what is
    encoded but not written when a failure is raised goes out with the terminal event. `tape` keeps the
    upstream's events for the response cache."""
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
                    if tape is not None:
                        tape.add(event, data)
                out = b"".join(pending)
                pending.clear()
                if out:
                    record.first_byte()
                    await req.write(out)
                if guard is not None and await guard.exceeded():
                    raise BudgetCut()
            for event, data in decoder.close():
                pending.append(writer.feed(event, data))
                if tape is not None:
                    tape.add(event, data)
            pending.append(writer.finish())  # what the upstream's end flushes; the closing events if complete
            if not writer.complete:
                raise StreamError("the upstream stream ended before the response was complete",
                                  code="upstream_stream_incomplete")
            record.usage = writer.usage
            if tape is not None and call.cache is not None:  # complete: stored before the client has its last event
                await call.cache.store_stream(record.target, record.model)
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


class HangUpNote(Protocol):
    """Where a hang-up is noted (a UsageRecord, or a relay's own note): how the cancelled task tells it apart."""

    status: int
    error_type: str | None


async def watch_disconnect(req: Request, task: "asyncio.Task[None]", record: HangUpNote) -> None:
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
