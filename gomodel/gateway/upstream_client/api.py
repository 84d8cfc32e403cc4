"""What the gateway calls on an upstream client (`UpstreamClient`, `UpstreamResponse`) and the small
pieces every client shares: the prepared request, the case-insensitive answer headers and the httpx-like
verbs over `send`. Failures are always upstream_errors' exceptions (httpx's names and hierarchy)."""

from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol, runtime_checkable


class UpstreamResponse(Protocol):
    status_code: int
    headers: Mapping[str, str]  # case-insensitive
    content: bytes  # the body, once read (always, unless sent with stream=True)

    async def aread(self) -> bytes: ...

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class UpstreamClient(Protocol):
    """What the gateway calls on its upstream client; failures raise HTTPError
    subclasses (which one decides 502 vs 504 and whether to retry)."""

    def build_request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                      content: bytes | None = None) -> Any: ...

    async def send(self, request: Any, *, stream: bool = False) -> UpstreamResponse: ...

    async def request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                      content: bytes | None = None, timeout: float | None = None) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


class Prepared:
    __slots__ = ("method", "url", "headers", "content")

    def __init__(self, method, url, headers, content):
        self.method, self.url, self.headers, self.content = method, url, headers, content


class Headers(dict):
    """An answer's headers: lower-case names, a repeated header's values joined with ", " (what httpx's
    `get` gives); looked up case-insensitively."""

    __slots__ = ()

    def get(self, key, default=None):
        return dict.get(self, key.lower(), default)

    def __getitem__(self, key):
        return dict.__getitem__(self, key.lower())

    def __contains__(self, key):
        return dict.__contains__(self, key.lower())


class ClientVerbs:
    """`build_request`, `request`, `get`, `post` and `async with`, over a client's `send`."""

    def build_request(self, method: str, url: str, headers=None, content: bytes | None = None) -> Prepared:
        return Prepared(method, url, headers, content)

    async def request(self, method: str, url: str, headers=None, content: bytes | None = None,
                      timeout: float | None = None):
        return await self.send(self.build_request(method, url, headers=headers, content=content), timeout=timeout)

    async def get(self, url: str, headers=None, timeout: float | None = None):
        return await self.request("GET", url, headers=headers, timeout=timeout)

    async def post(self, url: str, headers=None, content: bytes | None = None, timeout: float | None = None):
        return await self.request("POST", url, headers=headers, content=content, timeout=timeout)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.aclose()
