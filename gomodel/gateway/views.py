"""The /v1 endpoints: each call endpoint is the one pipeline (pipeline/run.py) with its protocol plug-in."""

import asyncio
import functools
import time

import orjson
from asgiref.sync import sync_to_async

from .http import Request
from .limits import visible_models
from .pipeline.run import run
from .protocols.chat import ChatExchange
from .protocols.embeddings import EmbeddingsExchange
from .protocols.media import ImagesExchange, ModerationsExchange, SpeechExchange
from .protocols.messages import CountTokensExchange, MessagesExchange
from .protocols.responses import ResponsesExchange
from .protocols.uploads import ImageEditsExchange, TranscriptionsExchange, TranslationsExchange
from .runtime import get_runtime

STARTED = int(time.time())


# The call endpoints are the pipeline itself, each with its protocol.
chat_completions = functools.partial(run, kind=ChatExchange)
embeddings = functools.partial(run, kind=EmbeddingsExchange)
messages = functools.partial(run, kind=MessagesExchange)
messages_count_tokens = functools.partial(run, kind=CountTokensExchange)
responses = functools.partial(run, kind=ResponsesExchange)
images_generations = functools.partial(run, kind=ImagesExchange)
audio_speech = functools.partial(run, kind=SpeechExchange)
moderations = functools.partial(run, kind=ModerationsExchange)
audio_transcriptions = functools.partial(run, kind=TranscriptionsExchange)
audio_translations = functools.partial(run, kind=TranslationsExchange)
images_edits = functools.partial(run, kind=ImageEditsExchange)


async def list_models(req: Request):
    runtime = get_runtime()
    principal = await runtime.keys.authenticate(req.headers)
    await runtime.registry.ensure_loaded()
    await runtime.registry.settled()
    listing = visible_models(principal, runtime.registry, runtime.registry.listing())
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
    checks: dict[str, bool] = {}
    try:
        checks["database"] = await sync_to_async(_database_answers, thread_sensitive=True)()
    except Exception:
        checks["database"] = False
    try:
        async with asyncio.timeout(2.0):
            checks["redis"] = bool(await runtime.redis.ping())
    except Exception:
        checks["redis"] = False
    body: dict[str, object] = {"checks": checks}
    try:
        await runtime.registry.ensure_loaded()
        broken = sorted(runtime.registry.undecryptable)
    except Exception:
        broken = None
    checks["provider_keys"] = broken == []
    if broken:  # names only, never a key: a replica with other GOMODEL_ENCRYPTION_KEYS must be loud
        body["undecryptable_providers"] = broken
    # Pool keys an upstream answered 401/403 (provider and label, never the key): flagged, but not unready —
    # the other keys serve, and no restart of this replica would fix it.
    rejected = runtime.registry.pools.rejected if broken is not None else []
    if rejected:
        body["rejected_provider_keys"] = [{"provider": name, "key": label} for name, label in rejected]
    ok = all(checks.values())
    await req.respond(200 if ok else 503, orjson.dumps({"status": "ok" if ok else "unavailable", **body}))
