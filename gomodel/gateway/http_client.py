"""The one upstream HTTP client per process (per event loop).

The gateway speaks a subset of httpx's client API, declared as `UpstreamClient` below (`request`,
`build_request` + `send(stream=True)`, responses with `status_code`, `headers`, `content`, `aread`,
`aiter_bytes`, `aclose`, and httpx's exception types), and runs it straight on an aiohttp session:
bench/ measured httpx's request and response objects at ~200 µs CPU per call on top of aiohttp's
~60 µs, half the gateway's whole cost per request (README, Benchmarks). The httpx clients it is
compared with (httpx on httpx-aiohttp's transport, httpx on httpcore) live in bench/transports.py.
"""

import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol, runtime_checkable

import aiohttp
import httpx
from django.conf import settings


class ResponseTooLarge(httpx.HTTPError):
    """The upstream's body is larger than UPSTREAM_MAX_BODY_BYTES: read no further."""


class DeadlineExceeded(httpx.TimeoutException):
    """The upstream call (streaming or not) took longer than UPSTREAM_DEADLINE in all."""


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


def _httpx_error(exc: BaseException, waited: float | None = None) -> httpx.HTTPError:
    """The httpx exception an aiohttp failure corresponds to (decides 502 vs 504, and retries).
    `waited`: seconds spent getting a connection, when that is what failed."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        # aiohttp reports both budgets alike: the socket's (UPSTREAM_CONNECT_TIMEOUT) and the whole
        # wait for a connection, pool included (+ UPSTREAM_POOL_TIMEOUT); only the latter runs out
        # after the socket's would (aiohttp rounds budgets over 5 s up to the second: hence the slack).
        slack = min(1.0, settings.UPSTREAM_POOL_TIMEOUT / 2)
        if waited is not None and waited >= settings.UPSTREAM_CONNECT_TIMEOUT + slack:
            return httpx.PoolTimeout(f"no upstream connection free within {settings.UPSTREAM_POOL_TIMEOUT:g} s")
        return httpx.ConnectTimeout(message)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(message)
    if isinstance(exc, TimeoutError):  # the total budget: aiohttp raises a bare TimeoutError for it
        return DeadlineExceeded("the upstream call took longer than its overall time budget "
                                f"(UPSTREAM_DEADLINE, {settings.UPSTREAM_DEADLINE:g} s, unless the caller set one)")
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
            limit = settings.UPSTREAM_MAX_BODY_BYTES
            declared = self._raw.content_length
            if declared is not None and declared > limit:
                raise ResponseTooLarge(f"the upstream's body of {declared} bytes is over UPSTREAM_MAX_BODY_BYTES")
            body = bytearray()
            try:
                async for chunk in self._raw.content.iter_any():
                    body += chunk
                    if len(body) > limit:
                        raise ResponseTooLarge(f"the upstream's body is over UPSTREAM_MAX_BODY_BYTES ({limit})")
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _httpx_error(exc) from exc
            self.content = bytes(body)
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
    """Every wait is bounded: a free connection (UPSTREAM_POOL_TIMEOUT), connecting
    (UPSTREAM_CONNECT_TIMEOUT), each read (UPSTREAM_TIMEOUT), the whole call, a stream's last byte
    included (UPSTREAM_DEADLINE); and a non-streaming body is read up to UPSTREAM_MAX_BODY_BYTES."""

    def __init__(self):
        self._session: aiohttp.ClientSession | None = None

    def _timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=settings.UPSTREAM_DEADLINE,
                                     connect=settings.UPSTREAM_POOL_TIMEOUT + settings.UPSTREAM_CONNECT_TIMEOUT,
                                     sock_connect=settings.UPSTREAM_CONNECT_TIMEOUT,
                                     sock_read=settings.UPSTREAM_TIMEOUT)

    def _get_session(self) -> aiohttp.ClientSession:
        # Made on first use: a ClientSession belongs to the event loop that is running then.
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=settings.UPSTREAM_MAX_CONNECTIONS, keepalive_timeout=60,
                                             ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=True,
                                                  skip_auto_headers=("user-agent",))
        return self._session

    def build_request(self, method: str, url: str, headers=None, content: bytes | None = None) -> Prepared:
        return Prepared(method, url, headers, content)

    async def send(self, request: Prepared, stream: bool = False, timeout: float | None = None) -> Response:
        client_timeout = self._timeout() if timeout is None else aiohttp.ClientTimeout(
            total=timeout, sock_connect=min(timeout, settings.UPSTREAM_CONNECT_TIMEOUT))
        started = time.monotonic()
        try:
            raw = await self._get_session().request(
                request.method, request.url, headers=request.headers, data=request.content,
                timeout=client_timeout, allow_redirects=False)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _httpx_error(exc, time.monotonic() - started) from exc
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
