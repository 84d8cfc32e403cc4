"""UPSTREAM_CLIENT=aiohttp: the fallback on a well-kept library, behind the same UpstreamClient interface,
with the same settings (proxies, CAs and client certificate, timeouts, body and head caps) and the same
typed errors, for an operator who meets an upstream the gateway's own client mishandles.

Where it is weaker than the gateway's own client (README, "The upstream client"): the head is bounded per
line (MAX_HEAD_BYTES) and in lines (MAX_HEADERS), not in total; a write the upstream does not take is
bounded by the deadline, not UPSTREAM_WRITE_TIMEOUT; aiohttp parses each socket read (up to 256 KiB) in one
go, so a body in one-byte chunks holds the loop ~50-100 ms a read (tests/integration/test_hostile_upstream.py).
Decompression is this module's own (answer.py's Inflater, a bounded slice at a time), not aiohttp's."""

import asyncio
import time
from collections.abc import Mapping

import aiohttp
from django.conf import settings
from yarl import URL

from .. import upstream_errors as E
from .answer import ENCODINGS, Headers, Inflater
from .bounds import INFLATE_SLICE, MAX_HEAD_BYTES, MAX_HEADERS, STREAM_HIGH_WATER, STREAM_SLICE, YIELD_EVERY
from .loop_client import ClientVerbs, Prepared, unless_streamed
from .proxy import ProxyRules
from .tls import tls_context

READ_BUFSIZE = 64 * 1024


def _error(exc: BaseException, waited: float | None = None, via: str = "") -> E.HTTPError:
    """The upstream_errors exception an aiohttp failure corresponds to (decides 502 vs 504, and retries).
    `waited`: seconds spent getting a connection, when that is what failed; `via`: the proxy, named."""
    message = (str(exc) or type(exc).__name__) + via
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        # aiohttp reports both budgets alike: the socket's (UPSTREAM_CONNECT_TIMEOUT) and the whole
        # wait for a connection, pool included (+ UPSTREAM_POOL_TIMEOUT); only the latter runs out
        # after the socket's would (aiohttp rounds budgets over 5 s up to the second: hence the slack).
        slack = min(1.0, settings.UPSTREAM_POOL_TIMEOUT / 2)
        if waited is not None and waited >= settings.UPSTREAM_CONNECT_TIMEOUT + slack:
            return E.PoolTimeout(f"no upstream connection free within {settings.UPSTREAM_POOL_TIMEOUT:g} s")
        return E.ConnectTimeout(message)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return E.ReadTimeout(message)
    if isinstance(exc, TimeoutError):  # the total budget: aiohttp raises a bare TimeoutError for it
        return E.DeadlineExceeded("the upstream call took longer than its overall time budget")
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        return E.ConnectError(f"the proxy refused the tunnel: HTTP {exc.status} {exc.message}{via}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return E.ConnectError(message)
    if isinstance(exc, aiohttp.ClientPayloadError) and "decompress" in message.lower():
        return E.DecodingError(message)
    if isinstance(exc, (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientResponseError)):
        return E.RemoteProtocolError(message)
    if isinstance(exc, (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError)):
        return E.UnsupportedProtocol(message)
    return E.NetworkError(message)


class AiohttpResponse:
    """What the gateway reads of an httpx.Response, over an aiohttp one."""

    __slots__ = ("status_code", "headers", "content", "_raw", "_read", "_inflater")
    headers: Mapping[str, str]  # answer.Headers (api.UpstreamResponse)
    _inflater: Inflater | None

    def __init__(self, raw: aiohttp.ClientResponse):
        self._raw = raw
        self.status_code = raw.status
        headers = Headers()
        for name, value in raw.raw_headers:
            key, text = name.decode("latin-1").lower(), value.decode("latin-1")
            previous = dict.get(headers, key)
            dict.__setitem__(headers, key, text if previous is None else f"{previous}, {text}")
        self.headers = headers
        self.content = b""
        self._read = False
        encoding = (headers.get("content-encoding") or "").strip().lower()
        if encoding in ENCODINGS:
            self._inflater = Inflater(encoding)
        elif encoding in ("", "identity"):
            self._inflater = None
        else:
            raw.close()
            raise E.DecodingError(f"the upstream answered in an encoding the gateway does not read ({encoding})")

    async def _pieces(self, limit: int):
        """The body in decoded pieces of at most `limit` bytes; the loop runs between pieces already here."""
        inflater = self._inflater
        produced = 0
        try:
            async for chunk in self._raw.content.iter_chunked(STREAM_HIGH_WATER):
                if inflater is None:
                    for at in range(0, len(chunk), limit):
                        if at:
                            await asyncio.sleep(0)
                        yield chunk[at:at + limit] if len(chunk) > limit else chunk
                    continue
                inflater.feed(chunk)
                while inflater.pending:
                    out = inflater.inflate(limit)
                    if out:
                        produced += len(out)
                        if produced >= YIELD_EVERY:
                            produced = 0
                            await asyncio.sleep(0)
                        yield out
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _error(exc) from None

    async def aread(self) -> bytes:
        if not self._read:
            limit = settings.UPSTREAM_MAX_BODY_BYTES
            declared = self._raw.content_length
            if declared is not None and declared > limit:
                self._raw.close()
                raise E.ResponseTooLarge(f"the upstream's body of {declared} bytes is over UPSTREAM_MAX_BODY_BYTES")
            body = bytearray()
            try:
                async for piece in self._pieces(INFLATE_SLICE):
                    body += piece
                    if len(body) > limit:
                        raise E.ResponseTooLarge(f"the upstream's body is over UPSTREAM_MAX_BODY_BYTES ({limit})")
            except E.HTTPError:
                self._raw.close()
                raise
            self.content = bytes(body)
            self._read = True
        return self.content

    async def aiter_bytes(self):
        try:
            async for piece in self._pieces(STREAM_SLICE):
                yield piece
        except E.HTTPError:
            self._raw.close()
            raise

    async def aclose(self):
        if self._read or self._raw.content.at_eof():
            self._raw.release()
        else:
            self._raw.close()  # mid-answer: the connection goes


class AiohttpClient(ClientVerbs):
    """Every wait is bounded: a free connection (UPSTREAM_POOL_TIMEOUT), connecting
    (UPSTREAM_CONNECT_TIMEOUT), each read (UPSTREAM_TIMEOUT), the whole call, a stream's last byte
    included (UPSTREAM_DEADLINE); and a non-streaming body is read up to UPSTREAM_MAX_BODY_BYTES."""

    def __init__(self):
        self.proxies = ProxyRules(settings.HTTPS_PROXY, settings.HTTP_PROXY, settings.NO_PROXY)
        self._session: aiohttp.ClientSession | None = None

    def _timeout(self, timeout: float | None) -> aiohttp.ClientTimeout:
        if timeout is not None:
            return aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, settings.UPSTREAM_CONNECT_TIMEOUT),
                                         sock_read=min(timeout, settings.UPSTREAM_TIMEOUT))
        return aiohttp.ClientTimeout(total=settings.UPSTREAM_DEADLINE,
                                     connect=settings.UPSTREAM_POOL_TIMEOUT + settings.UPSTREAM_CONNECT_TIMEOUT,
                                     sock_connect=settings.UPSTREAM_CONNECT_TIMEOUT,
                                     sock_read=settings.UPSTREAM_TIMEOUT)

    def _get_session(self) -> aiohttp.ClientSession:
        # Made on first use: a ClientSession belongs to the event loop that is running then.
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=settings.UPSTREAM_MAX_CONNECTIONS, keepalive_timeout=60,
                                             ttl_dns_cache=300, ssl=tls_context())
            self._session = aiohttp.ClientSession(
                connector=connector, trust_env=False, auto_decompress=False, skip_auto_headers=("user-agent",),
                read_bufsize=READ_BUFSIZE, max_line_size=MAX_HEAD_BYTES, max_field_size=MAX_HEAD_BYTES,
                max_headers=MAX_HEADERS)
        return self._session

    async def send(self, request: Prepared, stream: bool = False, timeout: float | None = None) -> AiohttpResponse:
        url = request.url
        try:
            parts = URL(url)
            tls, host = parts.scheme == "https", parts.host
        except ValueError as exc:
            raise E.UnsupportedProtocol(f"invalid upstream URL: {exc}") from None
        if parts.scheme not in ("http", "https") or not host:
            raise E.UnsupportedProtocol(f"the upstream URL must be http:// or https:// with a host, not {url[:100]!r}")
        proxy = None
        if self.proxies:
            port = parts.port
            assert port is not None  # http(s): yarl gives the scheme's default port
            proxy = self.proxies.for_url(tls, host, port)
        proxy_url: str | None = None  # aiohttp's defaults: no proxy, no headers for it
        proxy_headers: dict[str, str] | None = None
        via = ""
        if proxy is not None:
            proxy_url = proxy.url
            via = f" (through the proxy {proxy.label})"
        headers = dict(request.headers or {})
        if proxy is not None and proxy.auth is not None:
            if tls:  # on the CONNECT
                proxy_headers = {"Proxy-Authorization": proxy.auth}
            else:  # on the absolute-form request itself
                headers["Proxy-Authorization"] = proxy.auth
        if not any(name.lower() == "accept-encoding" for name in headers):
            headers["accept-encoding"] = "gzip, deflate"
        started = time.monotonic()
        try:
            raw = await self._get_session().request(
                request.method, url, headers=headers, data=request.content, timeout=self._timeout(timeout),
                allow_redirects=False, proxy=proxy_url, proxy_headers=proxy_headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _error(exc, time.monotonic() - started, via) from None
        except ValueError as exc:  # a header aiohttp refuses to send (a line break in it)
            raise E.LocalProtocolError(str(exc)) from None
        if raw.status < 200:
            raw.close()
            raise E.RemoteProtocolError(f"the upstream answered HTTP {raw.status}, which an API call never asks for")
        return await unless_streamed(AiohttpResponse(raw), stream)

    async def aclose(self):
        if self._session is not None:
            await self._session.close()
            self._session = None
