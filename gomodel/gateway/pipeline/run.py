"""The one run function: every /v1 call endpoint (chat, embeddings, Messages, count_tokens, Responses) is
`run(req, Protocol)`. Authenticate, read and validate the body, route, enter the Call (allow-lists, budget,
rate limits), send upstream with failover, answer whole or relay the stream, settle."""

from django.conf import settings

from ..http import Request
from ..json_body import parse_json_object
from ..routing import candidates
from ..runtime import get_runtime
from ..upstream import send_upstream
from .call import Call
from .relay import answer_whole, relay_stream


async def run(req: Request, kind) -> None:
    runtime = get_runtime()
    principal = await runtime.keys.authenticate(req.headers)
    body = parse_json_object(await req.read_body(settings.BODY_SIZE_LIMIT))
    kind.validate(body)
    exchange = kind(req, body)
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
                                                    call.record)
            if exchange.stream:
                writer = exchange.writer(adapter, call.record)
                await relay_stream(call, writer, response)
                if call.record.status == 200:
                    answer = writer.answer()
            else:
                answer = await answer_whole(call, adapter, response)
    finally:
        exchange.answered(answer)
