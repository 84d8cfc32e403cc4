"""The embeddings service: same routing, resilience, errors and usage event as chat."""

import orjson

from accounting.usage.estimate import estimate_prompt_tokens
from providers.adapters import embeddings_adapter
from providers.base import UpstreamError

from .http import Request
from .limits import governed
from .routing import candidates
from .upstream import send_upstream, unreadable
from .usage_record import UsageRecord, recorded


def _build(body: dict):
    def build(adapter, target, model):
        embeddings = embeddings_adapter(adapter)
        if embeddings is None:
            raise UpstreamError(400, f"Provider '{target.name}' does not offer embeddings.", param="model",
                                code="embeddings_not_supported")
        return embeddings.build_embeddings_request(body, target, model)

    return build


def _as_messages(value) -> list[dict]:
    """The input as messages, so that a missing upstream usage can be estimated like a prompt."""
    items = value if isinstance(value, list) and value and not isinstance(value[0], int) else [value]
    return [{"role": "user", "content": item if isinstance(item, str) else " " * (4 * len(item))} for item in items]


async def run_embeddings(req: Request, runtime, body: dict) -> None:
    chain = await candidates(runtime.registry, runtime.breaker, body["model"], body.get("provider"))
    messages = _as_messages(body["input"])
    tokens = estimate_prompt_tokens(messages, "")  # chars/4: no tokenizer on the event loop
    async with governed(req, runtime, body["model"], body.get("provider"), chain, tokens) as chain:
        target, model = chain[0]
        record = UsageRecord(req, target, body["model"], model, "/v1/embeddings", False, messages)
        async with recorded(req, runtime, record):
            response, adapter = await send_upstream(runtime, chain, _build(body), False, record)
            try:
                data, usage = adapter.parse_embeddings_response(response.content, record.model,
                                                                body.get("encoding_format"))
            except (ValueError, TypeError, KeyError) as exc:
                raise unreadable(record.target, exc, "an embeddings response") from None
            data["provider"] = record.target.name
            record.usage = usage
            await req.respond(200, orjson.dumps(data))
