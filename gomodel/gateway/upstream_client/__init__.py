"""The one upstream HTTP client per process (per event loop), behind `UpstreamClient`.

UPSTREAM_CLIENT picks it: `loop` (the default), the gateway's own HTTP/1.1 client on the event loop
(loop_client.py and answer.py), or `aiohttp` (aiohttp_client.py), a fallback on a well-kept library with
the same proxy, CA and limit settings and the same typed errors (gomodel/gateway/upstream_errors.py),
for an operator who meets an upstream the gateway's own client mishandles."""

from django.conf import settings

from .answer import Headers
from .api import UpstreamClient, UpstreamResponse
from .bounds import MAX_HEAD_BYTES, MAX_HEADERS, STREAM_HIGH_WATER
from .loop_client import ClientVerbs, LoopClient, Prepared, Response

CLIENTS = ("loop", "aiohttp")


def new_client() -> UpstreamClient:
    kind = settings.UPSTREAM_CLIENT
    if kind == "aiohttp":
        from .aiohttp_client import AiohttpClient

        return AiohttpClient()
    return LoopClient()


__all__ = ["CLIENTS", "ClientVerbs", "Headers", "LoopClient", "MAX_HEADERS", "MAX_HEAD_BYTES", "Prepared", "Response",
           "STREAM_HIGH_WATER", "UpstreamClient", "UpstreamResponse", "new_client"]
