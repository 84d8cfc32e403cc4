"""The one upstream HTTP client per process (per event loop): httpx's API on aiohttp's transport.

aiohttp's connection pool costs ~0.1 ms CPU a request where httpcore's costs 2-4 ms under
concurrency (ARCHITECTURE.md, encode/httpx#3215); bench/ compares the two (GOMODEL_HTTP_TRANSPORT).
"""

import os

import httpx
from django.conf import settings


def timeout() -> httpx.Timeout:
    return httpx.Timeout(settings.UPSTREAM_TIMEOUT, connect=settings.UPSTREAM_CONNECT_TIMEOUT)


def new_client() -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200, keepalive_expiry=60)
    if os.environ.get("GOMODEL_HTTP_TRANSPORT", "aiohttp") == "httpx":
        return httpx.AsyncClient(timeout=timeout(), limits=limits, trust_env=False)
    from httpx_aiohttp import AiohttpTransport

    return httpx.AsyncClient(transport=AiohttpTransport(limits=limits, trust_env=False), timeout=timeout(),
                             trust_env=False)
