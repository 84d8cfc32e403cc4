"""The upstream clients the gateway's own (gomodel/gateway/http_client.py, httpx's API straight on
aiohttp) is compared with; bench only. GOMODEL_HTTP_TRANSPORT picks one for a gateway started through
bench/transport_app.py:

    aiohttp        the gateway's own client (the default)
    httpx-aiohttp  httpx.AsyncClient on httpx-aiohttp's transport (what the gateway used first)
    httpx          httpx.AsyncClient on its own httpcore pool

Each fulfils gomodel.gateway.http_client.UpstreamClient (tests/integration/test_http_client.py runs the
same failure tests over all three).
"""

import aiohttp
import httpx

TRANSPORTS = ("aiohttp", "httpx-aiohttp", "httpx")


def new_client(kind: str):
    from django.conf import settings

    from gomodel.gateway.http_client import AiohttpClient

    if kind == "aiohttp":
        return AiohttpClient()
    timeout = httpx.Timeout(settings.UPSTREAM_TIMEOUT, connect=settings.UPSTREAM_CONNECT_TIMEOUT)
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200, keepalive_expiry=60)
    if kind == "httpx":
        return httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False)
    if kind == "httpx-aiohttp":
        from httpx_aiohttp import AiohttpTransport

        _fix_exception_map()
        return httpx.AsyncClient(transport=AiohttpTransport(limits=limits, trust_env=False), timeout=timeout,
                                 trust_env=False)
    raise ValueError(f"GOMODEL_HTTP_TRANSPORT must be one of {', '.join(TRANSPORTS)}, not {kind!r}")


def _fix_exception_map():
    """httpx-aiohttp 0.2.0 maps every aiohttp.ClientConnectionError (refused connection, reset, server
    disconnect) to httpx.ConnectTimeout, so an unreachable upstream was answered as a timeout (504, not 502).
    Map the generic case to httpx.NetworkError; the specific entries still win (ServerTimeoutError ->
    TimeoutException, SocketTimeoutError -> ReadTimeout, ClientConnectorError -> ConnectError)."""
    from httpx_aiohttp import transport

    if transport.AIOHTTP_EXC_MAP.get(aiohttp.ClientConnectionError) is httpx.ConnectTimeout:
        transport.AIOHTTP_EXC_MAP[aiohttp.ClientConnectionError] = httpx.NetworkError
