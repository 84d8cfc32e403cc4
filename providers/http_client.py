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

    _fix_exception_map()
    return httpx.AsyncClient(transport=AiohttpTransport(limits=limits, trust_env=False), timeout=timeout(),
                             trust_env=False)


def _fix_exception_map():
    """httpx-aiohttp 0.2.0 maps every aiohttp.ClientConnectionError (refused connection, reset, server
    disconnect) to httpx.ConnectTimeout, so an unreachable upstream was answered as a timeout (504, not 502).
    Map the generic case to httpx.NetworkError; the specific entries still win (ServerTimeoutError ->
    TimeoutException, SocketTimeoutError -> ReadTimeout, ClientConnectorError -> ConnectError)."""
    import aiohttp
    from httpx_aiohttp import transport

    if transport.AIOHTTP_EXC_MAP.get(aiohttp.ClientConnectionError) is httpx.ConnectTimeout:
        transport.AIOHTTP_EXC_MAP[aiohttp.ClientConnectionError] = httpx.NetworkError
