"""The upstream client's former home: what other modules import from here now lives in
gomodel/gateway/upstream_client/ (the client split into parts, its aiohttp fallback, proxies and TLS)."""

from .upstream_client import (  # noqa: F401
    ClientVerbs,
    LoopClient,
    Prepared,
    Response,
    UpstreamClient,
    UpstreamResponse,
    new_client,
)
