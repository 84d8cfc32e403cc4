"""The one upstream HTTP client per process (per event loop).

The gateway speaks a subset of httpx's client API, declared as `UpstreamClient` below (`request`,
`build_request` + `send(stream=True)`, responses with `status_code`, `headers`, `content`, `aread`,
`aiter_bytes`, `aclose`, and httpx's exception types), and runs it on pyreqwest (Rust's reqwest and
hyper on a Tokio thread; the event loop only awaits the results). bench/ measured the CPU per pooled
call at c=64 on this machine: pyreqwest 29 µs, aiohttp 55 µs, httpx far more (README, Benchmarks);
the clients it is compared with (aiohttp, httpx on aiohttp, httpx on httpcore) live in bench/transports.py.
"""

import time
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable

import httpx
from django.conf import settings
from pyreqwest import exceptions as rq
from pyreqwest.client import ClientBuilder


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
    return ReqwestClient()


def _httpx_error(exc: Exception, started: float, deadline: float, body: bool = False) -> httpx.HTTPError:
    """The httpx exception a pyreqwest failure corresponds to (decides 502 vs 504, and retries).
    `body`: it happened reading the body, so the connection was up."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, rq.PoolTimeoutError):
        return httpx.PoolTimeout(f"no upstream connection free within {settings.UPSTREAM_POOL_TIMEOUT:g} s")
    if isinstance(exc, rq.RequestTimeoutError):
        # reqwest reports every budget before the answer's head as a "connect" timeout, and the whole
        # call's budget running out mid-body as a read timeout: the clock tells them apart (with
        # UPSTREAM_TIMEOUT under UPSTREAM_CONNECT_TIMEOUT a connect timeout counts as a read timeout).
        elapsed = time.monotonic() - started
        if type(exc) is rq.RequestTimeoutError or elapsed >= deadline * 0.98:
            return DeadlineExceeded(f"the upstream call took longer than its overall time budget ({deadline:g} s)")
        if isinstance(exc, rq.WriteTimeoutError):
            return httpx.WriteTimeout(message)
        if body or elapsed >= settings.UPSTREAM_TIMEOUT * 0.98:
            return httpx.ReadTimeout(message)
        return httpx.ConnectTimeout(message)
    if isinstance(exc, rq.ConnectError):
        return httpx.ConnectError(message)
    if isinstance(exc, (rq.ReadError, rq.WriteError)):
        return httpx.RemoteProtocolError(message)
    if isinstance(exc, rq.DecodeError):
        return httpx.DecodingError(message)
    if isinstance(exc, rq.BuilderError):  # a URL reqwest cannot use (no scheme, an unknown one)
        return httpx.UnsupportedProtocol(message)
    return httpx.NetworkError(message)


class Prepared:
    __slots__ = ("method", "url", "headers", "content")

    def __init__(self, method, url, headers, content):
        self.method, self.url, self.headers, self.content = method, url, headers, content


class Response:
    """What the gateway reads of an httpx.Response, over a streamed pyreqwest one."""

    __slots__ = ("status_code", "headers", "content", "_raw", "_request", "_read", "_started", "_deadline")

    def __init__(self, request, raw, started: float, deadline: float):
        self._started, self._deadline = started, deadline  # to tell the deadline from a read timeout
        self._request = request  # the StreamRequest: leaving it closes the body (or frees the connection)
        self._raw = raw
        self.status_code = raw.status
        self.headers = raw.headers  # case-insensitive, like httpx's
        self.content = b""
        self._read = False

    async def aread(self) -> bytes:
        if not self._read:
            limit = settings.UPSTREAM_MAX_BODY_BYTES
            declared = self.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise ResponseTooLarge(f"the upstream's body of {declared} bytes is over UPSTREAM_MAX_BODY_BYTES")
            reader = self._raw.body_reader
            try:
                first = await reader.read_chunk()
                second = await reader.read_chunk() if first is not None else None
                if second is None:  # the usual answer: one chunk, no copy
                    body = first.to_bytes() if first is not None else b""
                    if len(body) > limit:
                        raise ResponseTooLarge(f"the upstream's body is over UPSTREAM_MAX_BODY_BYTES ({limit})")
                else:
                    buffer = bytearray(first)
                    buffer += second
                    while True:
                        if len(buffer) > limit:
                            raise ResponseTooLarge(f"the upstream's body is over UPSTREAM_MAX_BODY_BYTES ({limit})")
                        chunk = await reader.read_chunk()
                        if chunk is None:
                            break
                        buffer += chunk
                    body = bytes(buffer)
            except rq.PyreqwestError as exc:
                raise _httpx_error(exc, self._started, self._deadline, body=True) from exc
            self.content = body
            self._read = True
        return self.content

    async def aiter_bytes(self):
        reader = self._raw.body_reader
        try:
            while (chunk := await reader.read_chunk()) is not None:
                yield chunk.to_bytes()
        except rq.PyreqwestError as exc:
            raise _httpx_error(exc, self._started, self._deadline, body=True) from exc

    async def aclose(self):
        request, self._request = self._request, None
        if request is not None:
            try:
                await request.__aexit__(None, None, None)
            except (rq.PyreqwestError, RuntimeError):
                pass  # closing a broken stream: nothing left to free


class ReqwestClient:
    """Every wait is bounded: a free connection (UPSTREAM_POOL_TIMEOUT), connecting
    (UPSTREAM_CONNECT_TIMEOUT), each read (UPSTREAM_TIMEOUT), the whole call, a stream's last byte
    included (UPSTREAM_DEADLINE); and a non-streaming body is read up to UPSTREAM_MAX_BODY_BYTES.
    No proxy from the environment, no redirects followed, no cookies: a provider's answer is relayed
    as it is."""

    def __init__(self):
        self._client = None
        self._config = None
        self._deadline = None
        self._retired = []  # clients built with older settings, closed with this one

    def _settings(self) -> tuple:
        return (settings.UPSTREAM_MAX_CONNECTIONS, settings.UPSTREAM_POOL_TIMEOUT, settings.UPSTREAM_CONNECT_TIMEOUT,
                settings.UPSTREAM_TIMEOUT, settings.UPSTREAM_DEADLINE)

    def _get_client(self):
        # Built on first use, and again if the settings changed (tests, a reload): a tuple compare per call.
        config = self._settings()
        if config != self._config:
            if self._client is not None:
                self._retired.append(self._client)
            limit, pool_wait, connect, read, deadline = config
            self._client = (ClientBuilder().max_connections(limit).pool_timeout(timedelta(seconds=pool_wait))
                            .connect_timeout(timedelta(seconds=connect)).read_timeout(timedelta(seconds=read))
                            .follow_redirects(False).no_proxy().user_agent("gomodel").build())
            self._deadline = timedelta(seconds=deadline)
            self._config = config
        return self._client

    def build_request(self, method: str, url: str, headers=None, content: bytes | None = None) -> Prepared:
        return Prepared(method, url, headers, content)

    async def send(self, request: Prepared, stream: bool = False, timeout: float | None = None) -> Response:
        client = self._get_client()
        started = time.monotonic()
        deadline = self._config[4] if timeout is None else timeout
        try:
            builder = client.request(request.method, request.url).timeout(
                self._deadline if timeout is None else timedelta(seconds=timeout))
            if request.headers:
                builder = builder.headers(request.headers)
            if request.content is not None:
                builder = builder.body_bytes(request.content)
            # Hand each read over as it comes: by default the response waits to fill a 64 KiB buffer
            # (a stream's first token, or a declared size over the cap, would wait on it).
            pending = builder.streamed_read_buffer_limit(0).build_streamed()
            raw = await pending.__aenter__()
        except rq.PyreqwestError as exc:
            raise _httpx_error(exc, started, deadline) from exc
        response = Response(pending, raw, started, deadline)
        if not stream:
            try:
                await response.aread()
            finally:
                await response.aclose()
        return response

    async def request(self, method: str, url: str, headers=None, content: bytes | None = None,
                      timeout: float | None = None) -> Response:
        return await self.send(Prepared(method, url, headers, content), timeout=timeout)

    async def get(self, url: str, headers=None, timeout: float | None = None) -> Response:
        return await self.request("GET", url, headers=headers, timeout=timeout)

    async def post(self, url: str, headers=None, content: bytes | None = None, timeout: float | None = None):
        return await self.request("POST", url, headers=headers, content=content, timeout=timeout)

    async def aclose(self):
        clients, self._retired = [*self._retired, self._client], []
        self._client = self._config = None
        for client in clients:
            if client is not None:
                await client.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.aclose()
