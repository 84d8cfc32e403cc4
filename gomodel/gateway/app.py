"""The ASGI app for /v1 and /health: a dict lookup instead of Django's URL resolver and middleware."""

import gc
import logging
from collections.abc import Awaitable, Callable
from functools import lru_cache

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from . import batches, files, views
from .errors import INVALID_REQUEST, NOT_FOUND, PROVIDER, GatewayError
from .http import ClientDisconnected, Request
from .ingress import anthropic_errors
from .protocols import passthrough
from .runtime import get_runtime
from .stored_responses import routes as stored_response_routes
from .usage_views import prometheus_metrics, usage
from .views import chat_completions, embeddings, health, list_models, messages, messages_count_tokens, ready, responses

log = logging.getLogger(__name__)


async def hello(req):
    """Anthropic's reachability probe, which Claude Code sends its base URL (`HEAD /api/hello`) unless
    non-essential traffic is off: answered as api.anthropic.com answers it, without a key."""
    await req.respond(200, b'{"message":"hello"}')


Handler = Callable[[Request], Awaitable[None]]

ROUTES: dict[str, dict[str, Handler]] = {
    "/v1/chat/completions": {"POST": chat_completions},
    "/v1/embeddings": {"POST": embeddings},
    "/v1/messages": {"POST": messages},
    "/v1/messages/count_tokens": {"POST": messages_count_tokens},
    "/v1/responses": {"POST": responses},
    "/v1/images/generations": {"POST": views.images_generations},
    "/v1/audio/speech": {"POST": views.audio_speech},
    "/v1/moderations": {"POST": views.moderations},
    "/v1/audio/transcriptions": {"POST": views.audio_transcriptions},
    "/v1/audio/translations": {"POST": views.audio_translations},
    "/v1/images/edits": {"POST": views.images_edits},
    "/v1/files": {"GET": files.list_files, "POST": files.upload_file},
    "/v1/batches": {"GET": batches.list_batches, "POST": batches.create_batch},
    "/v1/models": {"GET": list_models},
    "/v1/usage": {"GET": usage},
    "/metrics": {"GET": prometheus_metrics},
    "/health": {"GET": health},
    "/api/hello": {"GET": hello},
    "/health/ready": {"GET": ready},
}


# Routes whose clients (the anthropic SDK, Claude Code) read errors in Anthropic's envelope.
ANTHROPIC_ROUTES = frozenset(("/v1/messages", "/v1/messages/count_tokens"))


# Paths with an id in them: a prefix and the function that gives the methods for the rest of the path.
PREFIX_ROUTES = (("/v1/responses/", stored_response_routes), ("/v1/files/", files.routes),
                 ("/v1/batches/", batches.routes), (passthrough.PREFIX, passthrough.methods))


def route(path: str) -> dict[str, Handler] | None:
    methods = ROUTES.get(path)
    if methods is None:
        for prefix, methods_for in PREFIX_ROUTES:
            if path.startswith(prefix):
                return methods_for(path[len(prefix):])
    return methods


def handles(path: str) -> bool:
    return (path.startswith("/v1/") or path == "/v1" or path.startswith(passthrough.PREFIX)
            or (path.rstrip("/") or "/") in ROUTES)


def host_allowed(host: bytes | None) -> bool:
    """DJANGO_ALLOWED_HOSTS, as Django checks it for the admin (a missing Host header passes: HTTP/1.0)."""
    return host is None or _host_allowed(host, tuple(settings.ALLOWED_HOSTS))


@lru_cache(maxsize=1024)
def _host_allowed(host: bytes, allowed: tuple) -> bool:
    domain, _port = split_domain_port(host.decode("latin-1").lower())
    return bool(domain) and validate_host(domain, allowed)


async def gateway_app(scope, receive, send):
    req = Request(scope, receive, send)
    path = req.path.rstrip("/") or "/"
    methods = route(path)
    if path in ANTHROPIC_ROUTES:
        req.error_body = anthropic_errors.error_body
    try:
        # /v1 (and the provider passthrough) answer only for the host names the admin answers for; /health and
        # /metrics are for probes and scrapers that name a container or an IP.
        if path.startswith(("/v1", passthrough.PREFIX)) and not host_allowed(req.headers.get(b"host")):
            raise GatewayError(400, INVALID_REQUEST, "This host name is not in DJANGO_ALLOWED_HOSTS.",
                               code="disallowed_host")
        if methods is None:
            raise GatewayError(404, NOT_FOUND, f"No route for {req.method} {req.path}.", code="route_not_found")
        handler = methods.get(req.method)
        if handler is None:
            if req.method == "HEAD" and "GET" in methods:
                handler = methods["GET"]
            else:
                allow = ", ".join(methods).encode()
                raise GatewayError(405, INVALID_REQUEST, f"Method {req.method} is not allowed on {path}; use "
                                   f"{allow.decode()}.", code="method_not_allowed", headers=[(b"allow", allow)])
        await handler(req)
    except GatewayError as err:
        if not req.response_started:
            await req.respond_error(err)
    except ClientDisconnected:
        pass
    except Exception:
        log.exception("unhandled error on %s %s (request %s)", req.method, req.path, req.request_id)
        if not req.response_started:
            await req.respond_error(GatewayError(500, PROVIDER, "The gateway failed to handle this request; "
                                                 f"request id {req.request_id}.", code="internal_error"))


def freeze_startup_objects():
    """Move what start-up built (modules, Django's apps and settings, the registry: ~90k objects that
    live as long as the process) out of the collector's way. A full collection walked all of them
    (~100 ms with the event loop stopped, the streaming p99); after this it walks only what requests
    made since. And a young collection every 10,000 allocations instead of 700: a request's garbage is
    mostly freed by reference counting before the collector looks (bench/: the collector's time per
    JSON request at c=10 went from ~15-20 µs to ~1 µs)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000)


async def lifespan(scope, receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if settings.SEMANTIC_CACHE_EMBED_MODEL:  # its store must open, or the gateway does not start
                from .semantic_cache.lookup import semantic_of
                from .semantic_cache.store import SemanticCacheUnavailable

                try:
                    await semantic_of(get_runtime()).open()
                except SemanticCacheUnavailable as exc:
                    log.error("semantic cache: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
            try:
                runtime = get_runtime()
                await runtime.registry.ensure_loaded()
            except Exception as exc:  # the DB or an upstream may be down: serve anyway, load lazily
                log.warning("gateway start-up could not load providers yet: %s", exc)
            freeze_startup_objects()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            try:
                await get_runtime().close()
            finally:
                await send({"type": "lifespan.shutdown.complete"})
            return
