"""The upstream clients the gateway's own (gomodel/gateway/upstream_client/, httpx's API on the event loop) is
compared with; bench only. GOMODEL_HTTP_TRANSPORT picks one for a gateway started through
bench/transport_app.py:

    httptools      the gateway's own client (the default): HTTP/1.1 on the event loop, httptools' parser
    reqwest        httpx's API on pyreqwest (Rust's reqwest on a Tokio thread)
    aiohttp        UPSTREAM_CLIENT=aiohttp, the gateway's fallback (upstream_client/aiohttp_client.py)
    httpx-aiohttp  httpx.AsyncClient on httpx-aiohttp's transport (what the gateway used first)
    httpx          httpx.AsyncClient on its own httpcore pool

Each fulfils gomodel.gateway.upstream_client.UpstreamClient (tests/integration/test_http_client.py runs the
same failure tests over all of them).
"""

import time
from datetime import timedelta

import aiohttp
import httpx
from django.conf import settings
from pyreqwest import exceptions as rq
from pyreqwest.client import ClientBuilder

from gomodel.gateway import upstream_errors as E
from gomodel.gateway.upstream_client import ClientVerbs, Prepared
from gomodel.gateway.upstream_client.aiohttp_client import AiohttpClient
from gomodel.gateway.upstream_client.loop_client import unless_streamed
from gomodel.gateway.upstream_errors import DeadlineExceeded, ResponseTooLarge

OWN = "httptools"
TRANSPORTS = (OWN, "reqwest", "aiohttp", "httpx-aiohttp", "httpx")


def new_client(kind: str):
    from gomodel.gateway.upstream_client import LoopClient as own_client

    if kind == OWN:
        return own_client()
    if kind == "reqwest":
        return ReqwestClient()
    if kind == "aiohttp":
        return AiohttpClient()
    timeout = httpx.Timeout(settings.UPSTREAM_TIMEOUT, connect=settings.UPSTREAM_CONNECT_TIMEOUT)
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200, keepalive_expiry=60)
    if kind == "httpx":
        return HttpxClient(httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False))
    if kind == "httpx-aiohttp":
        from httpx_aiohttp import AiohttpTransport

        _fix_exception_map()
        return HttpxClient(httpx.AsyncClient(transport=AiohttpTransport(limits=limits, trust_env=False),
                                             timeout=timeout, trust_env=False))
    raise ValueError(f"GOMODEL_HTTP_TRANSPORT must be one of {', '.join(TRANSPORTS)}, not {kind!r}")


def from_httpx(exc: Exception) -> E.HTTPError:
    """The same failure in the gateway's types (upstream_errors keeps httpx's names)."""
    for cls in type(exc).__mro__:
        ours = getattr(E, cls.__name__, None)
        if isinstance(ours, type) and issubclass(ours, E.HTTPError):
            return ours(str(exc) or type(exc).__name__)
    return E.NetworkError(str(exc) or type(exc).__name__)


class HttpxClient(ClientVerbs):
    """httpx.AsyncClient behind the UpstreamClient interface: its failures become upstream_errors'."""

    def __init__(self, client: httpx.AsyncClient):
        self._client = client

    def build_request(self, method: str, url: str, headers=None, content: bytes | None = None):
        return self._client.build_request(method, url, headers=headers, content=content)

    async def send(self, request, stream: bool = False):
        try:
            return HttpxResponse(await self._client.send(request, stream=stream))
        except httpx.HTTPError as exc:
            raise from_httpx(exc) from exc

    async def request(self, method: str, url: str, headers=None, content: bytes | None = None,
                      timeout: float | None = None):
        extra = {"timeout": timeout} if timeout is not None else {}
        try:
            return HttpxResponse(await self._client.request(method, url, headers=headers, content=content, **extra))
        except httpx.HTTPError as exc:
            raise from_httpx(exc) from exc

    async def aclose(self):
        await self._client.aclose()


class HttpxResponse:
    def __init__(self, raw: httpx.Response):
        self._raw = raw
        self.status_code = raw.status_code
        self.headers = raw.headers

    @property
    def content(self) -> bytes:
        return self._raw.content

    async def aread(self) -> bytes:
        try:
            return await self._raw.aread()
        except httpx.HTTPError as exc:
            raise from_httpx(exc) from exc

    async def aiter_bytes(self):
        try:
            async for chunk in self._raw.aiter_bytes():
                yield chunk
        except httpx.HTTPError as exc:
            raise from_httpx(exc) from exc

    async def aclose(self):
        await self._raw.aclose()


def _fix_exception_map():
    """httpx-aiohttp 0.2.0 maps every aiohttp.ClientConnectionError (refused connection, reset, server
    disconnect) to httpx.ConnectTimeout, so an unreachable upstream was answered as a timeout (504, not 502).
    Map the generic case to httpx.NetworkError; the specific entries still win (ServerTimeoutError ->
    TimeoutException, SocketTimeoutError -> ReadTimeout, ClientConnectorError -> ConnectError)."""
    from httpx_aiohttp import transport

    if transport.AIOHTTP_EXC_MAP.get(aiohttp.ClientConnectionError) is httpx.ConnectTimeout:
        transport.AIOHTTP_EXC_MAP[aiohttp.ClientConnectionError] = httpx.NetworkError


# -- pyreqwest ----------------------------------------------------------------------------------

def _reqwest_error(exc: Exception, started: float, deadline: float, body: bool = False) -> E.HTTPError:
    """The upstream_errors exception a pyreqwest failure corresponds to (decides 502 vs 504, and retries).
    `body`: it happened reading the body, so the connection was up."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, rq.PoolTimeoutError):
        return E.PoolTimeout(f"no upstream connection free within {settings.UPSTREAM_POOL_TIMEOUT:g} s")
    if isinstance(exc, rq.RequestTimeoutError):
        # reqwest reports every budget before the answer's head as a "connect" timeout, and the whole
        # call's budget running out mid-body as a read timeout: the clock tells them apart (with
        # UPSTREAM_TIMEOUT under UPSTREAM_CONNECT_TIMEOUT a connect timeout counts as a read timeout).
        elapsed = time.monotonic() - started
        if type(exc) is rq.RequestTimeoutError or elapsed >= deadline * 0.98:
            return DeadlineExceeded(f"the upstream call took longer than its overall time budget ({deadline:g} s)")
        if isinstance(exc, rq.WriteTimeoutError):
            return E.WriteTimeout(message)
        if body or elapsed >= settings.UPSTREAM_TIMEOUT * 0.98:
            return E.ReadTimeout(message)
        return E.ConnectTimeout(message)
    if isinstance(exc, rq.ConnectError):
        return E.ConnectError(message)
    if isinstance(exc, (rq.ReadError, rq.WriteError)):
        return E.RemoteProtocolError(message)
    if isinstance(exc, rq.DecodeError):
        return E.DecodingError(message)
    if isinstance(exc, rq.BuilderError):  # a URL reqwest cannot use (no scheme, an unknown one)
        return E.UnsupportedProtocol(message)
    return E.NetworkError(message)


class ReqwestResponse:
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
                raise _reqwest_error(exc, self._started, self._deadline, body=True) from exc
            self.content = body
            self._read = True
        return self.content

    async def aiter_bytes(self):
        reader = self._raw.body_reader
        try:
            while (chunk := await reader.read_chunk()) is not None:
                yield chunk.to_bytes()
        except rq.PyreqwestError as exc:
            raise _reqwest_error(exc, self._started, self._deadline, body=True) from exc

    async def aclose(self):
        request, self._request = self._request, None
        if request is not None:
            try:
                await request.__aexit__(None, None, None)
            except (rq.PyreqwestError, RuntimeError):
                pass  # closing a broken stream: nothing left to free


class ReqwestClient(ClientVerbs):
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

    async def send(self, request: Prepared, stream: bool = False, timeout: float | None = None) -> ReqwestResponse:
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
            raise _reqwest_error(exc, started, deadline) from exc
        return await unless_streamed(ReqwestResponse(pending, raw, started, deadline), stream)

    async def aclose(self):
        clients, self._retired = [*self._retired, self._client], []
        self._client = self._config = None
        for client in clients:
            if client is not None:
                await client.close()
