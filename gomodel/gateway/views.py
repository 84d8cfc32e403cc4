"""The /v1 endpoints: each validates its input and calls one service function."""

import asyncio
import time

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings

from .budgets import check_budget
from .chat import run_chat
from .embeddings import run_embeddings
from .http import Request
from .ingress.messages import run_count_tokens, run_messages
from .ingress.messages_validation import validate_count_tokens, validate_messages
from .json_body import parse_json_object
from .limits import visible_models
from .responses import run_responses
from .responses_validation import validate_responses
from .runtime import get_runtime
from .validation import validate_chat, validate_embeddings

STARTED = int(time.time())


async def _json_call(req: Request, validate, service):
    runtime = get_runtime()
    req.auth = await runtime.keys.authenticate(req.headers)
    body = parse_json_object(await req.read_body(settings.BODY_SIZE_LIMIT))
    validate(body)
    await check_budget(runtime, req)
    await service(req, runtime, body)


async def chat_completions(req: Request):
    await _json_call(req, validate_chat, run_chat)


async def embeddings(req: Request):
    await _json_call(req, validate_embeddings, run_embeddings)


async def messages(req: Request):
    await _json_call(req, validate_messages, run_messages)


async def messages_count_tokens(req: Request):
    await _json_call(req, validate_count_tokens, run_count_tokens)


async def responses(req: Request):
    await _json_call(req, validate_responses, run_responses)


async def list_models(req: Request):
    runtime = get_runtime()
    req.auth = await runtime.keys.authenticate(req.headers)
    await runtime.registry.ensure_loaded()
    await runtime.registry.settled()
    listing = visible_models(req.auth, runtime.registry, runtime.registry.listing())
    data = [{"id": f"{target.name}/{model}", "object": "model", "created": STARTED, "owned_by": target.name}
            for target, model in listing]
    await req.respond(200, orjson.dumps({"object": "list", "data": data}))


async def health(req: Request):
    await req.respond(200, b'{"status":"ok"}')


def _database_answers() -> bool:
    from django.db import close_old_connections, connection

    close_old_connections()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return True


async def ready(req: Request):
    runtime = get_runtime()
    checks = {}
    try:
        checks["database"] = await sync_to_async(_database_answers, thread_sensitive=True)()
    except Exception:
        checks["database"] = False
    try:
        async with asyncio.timeout(2.0):
            checks["redis"] = bool(await runtime.redis.ping())
    except Exception:
        checks["redis"] = False
    body = {"checks": checks}
    try:
        await runtime.registry.ensure_loaded()
        broken = sorted(runtime.registry.undecryptable)
    except Exception:
        broken = None
    checks["provider_keys"] = broken == []
    if broken:  # names only, never a key: a replica with other GOMODEL_ENCRYPTION_KEYS must be loud
        body["undecryptable_providers"] = broken
    ok = all(checks.values())
    await req.respond(200 if ok else 503, orjson.dumps({"status": "ok" if ok else "unavailable", **body}))
