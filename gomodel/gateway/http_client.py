"""The one upstream HTTP client per process (per event loop).

The gateway speaks a subset of httpx's client API, declared as `UpstreamClient` below (`request`,
`build_request` + `send(stream=True)`, responses with `status_code`, `headers`, `content`, `aread`,
`aiter_bytes`, `aclose`, and httpx's exception types), and runs it straight on an aiohttp session:
bench/ measured httpx's request and response objects at ~200 µs CPU per call on top of aiohttp's
~60 µs, half the gateway's whole cost per request (README, Benchmarks). The httpx clients it is
compared with (httpx on httpx-aiohttp's transport, httpx on httpcore) live in bench/transports.py.
"""

from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol, runtime_checkable

import aiohttp
import httpx
from django.conf import settings


class UpstreamResponse(Protocol):
    status_code: int
    headers: Mapping[str, str]  # case-insensitive
    content: bytes  # the body, once read (always, unless sent with stream=True)

    async def aread(self) -> bytes: ...

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class UpstreamClient(Protocol):
    """What the gateway calls on its upstream client; failures raise httpx.HTTPError subclasses
    (which one decides 502 vs 504 and whether to retry)."""

    def build_request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                      content: bytes | None = None) -> Any: ...

    async def send(self, request: Any, *, stream: bool = False) -> UpstreamResponse: ...

    async def request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                      content: bytes | None = None, timeout: float | None = None) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


def new_client() -> UpstreamClient:
    return AiohttpClient()


def _httpx_error(exc: BaseException) -> httpx.HTTPError:
    """The httpx exception an aiohttp failure corresponds to (decides 502 vs 504, and retries)."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message)
    if isinstance(exc, (aiohttp.ServerTimeoutError, TimeoutError)):
        return httpx.ReadTimeout(message)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message)
    if isinstance(exc, (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError)):
        return httpx.RemoteProtocolError(message)
    if isinstance(exc, (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError)):
        return httpx.UnsupportedProtocol(message)
    return httpx.NetworkError(message)


class Prepared:
    __slots__ = ("method", "url", "headers", "content")

    def __init__(self, method, url, headers, content):
        self.method, self.url, self.headers, self.content = method, url, headers, content


class Response:
    """What the gateway reads of an httpx.Response, over an aiohttp one."""

    __slots__ = ("status_code", "headers", "content", "_raw", "_read")

    def __init__(self, raw: aiohttp.ClientResponse):
        self._raw = raw
        self.status_code = raw.status
        self.headers = raw.headers  # case-insensitive, like httpx's
        self.content = b""
        self._read = False

    async def aread(self) -> bytes:
        if not self._read:
            try:
                self.content = await self._raw.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _httpx_error(exc) from exc
            self._read = True
        return self.content

    async def aiter_bytes(self):
        try:
            async for chunk in self._raw.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _httpx_error(exc) from exc

    async def aclose(self):
        self._raw.release()


class AiohttpClient:
    def __init__(self):
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=settings.UPSTREAM_CONNECT_TIMEOUT,
                                              sock_read=settings.UPSTREAM_TIMEOUT)

    def _get_session(self) -> aiohttp.ClientSession:
        # Made on first use: a ClientSession belongs to the event loop that is running then.
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=1000, keepalive_timeout=60, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=True,
                                                  skip_auto_headers=("user-agent",))
        return self._session

    def build_request(self, method: str, url: str, headers=None, content: bytes | None = None) -> Prepared:
        return Prepared(method, url, headers, content)

    async def send(self, request: Prepared, stream: bool = False, timeout: float | None = None) -> Response:
        client_timeout = self._timeout if timeout is None else aiohttp.ClientTimeout(
            total=timeout, sock_connect=min(timeout, settings.UPSTREAM_CONNECT_TIMEOUT))
        try:
            raw = await self._get_session().request(
                request.method, request.url, headers=request.headers, data=request.content,
                timeout=client_timeout, allow_redirects=False)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _httpx_error(exc) from exc
        response = Response(raw)
        if not stream:
            try:
                await response.aread()
            finally:
                raw.release()
        return response

    async def request(self, method: str, url: str, headers=None, content: bytes | None = None,
                      timeout: float | None = None) -> Response:
        return await self.send(Prepared(method, url, headers, content), timeout=timeout)

    async def get(self, url: str, headers=None, timeout: float | None = None) -> Response:
        return await self.request("GET", url, headers=headers, timeout=timeout)

    async def post(self, url: str, headers=None, content: bytes | None = None, timeout: float | None = None):
        return await self.request("POST", url, headers=headers, content=content, timeout=timeout)

    async def aclose(self):
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.aclose()
