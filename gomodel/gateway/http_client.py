"""The one upstream HTTP client per process (per event loop).

The gateway speaks a subset of httpx's client API, declared as `UpstreamClient` below (`request`,
`build_request` + `send(stream=True)`, responses with `status_code`, `headers`, `content`, `aread`,
`aiter_bytes`, `aclose`, and httpx's exception names, from gomodel/gateway/upstream_errors.py), and
runs it on the event loop itself: HTTP/1.1 over asyncio transports, parsed by httptools (llhttp, the
parser uvicorn reads requests with), a keep-alive pool per origin. bench/micro.py measured the CPU of
one pooled call at c=64 on this machine: this client 15 µs, pyreqwest 37 µs (and ~20 µs per stream
chunk: every read crosses from its Tokio thread back to the loop for the GIL), aiohttp 55 µs, httpx
183-913 µs (README, "What decided the design"). The clients it is compared with live in
bench/transports.py.
"""

import asyncio
import ssl
import zlib
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote, urlsplit

import httptools
from django.conf import settings

from .upstream_errors import (
    ConnectError,
    ConnectTimeout,
    DeadlineExceeded,
    DecodingError,
    HTTPError,
    LocalProtocolError,
    PoolTimeout,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    ResponseTooLarge,
    UnsupportedProtocol,
)


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


def new_client() -> UpstreamClient:
    return LoopClient()


MAX_HEAD_BYTES = 64 * 1024  # an answer's status line and headers
STREAM_HIGH_WATER = 256 * 1024  # a stream's bytes read but not consumed: stop reading the socket above this
KEEPALIVE_SECONDS = 60.0  # an idle pooled connection older than this is closed, not reused
MAX_IDLE_PER_ORIGIN = 256
_URL_CACHE_SIZE = 4096


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


class _Origin:
    __slots__ = ("key", "host", "port", "tls", "host_header")

    def __init__(self, host: str, port: int, tls: bool, host_header: bytes):
        self.key = (tls, host, port)
        self.host, self.port, self.tls, self.host_header = host, port, tls, host_header


_urls: dict[str, tuple[_Origin, bytes]] = {}


def _parse_url(url: str) -> tuple[_Origin, bytes]:
    """(origin, request target) of a URL; cached, since a provider's URLs repeat."""
    hit = _urls.get(url)
    if hit is not None:
        return hit
    try:
        parts = urlsplit(url)
        scheme, host, port = parts.scheme.lower(), parts.hostname, parts.port
    except ValueError as exc:
        raise UnsupportedProtocol(f"invalid upstream URL: {exc}") from None
    if scheme not in ("http", "https") or not host:
        raise UnsupportedProtocol(f"the upstream URL must be http:// or https:// with a host, not {url[:100]!r}")
    tls = scheme == "https"
    target = quote((parts.path or "/") + (f"?{parts.query}" if parts.query else ""), safe="/:?#[]@!$&'()*+,;=%-._~")
    netloc = parts.netloc.rsplit("@", 1)[-1]  # never send user:password@ as the Host
    host_header = netloc.encode("ascii") if netloc.isascii() else netloc.encode("idna")
    origin = _Origin(host, port or (443 if tls else 80), tls, host_header)
    if len(_urls) >= _URL_CACHE_SIZE:
        _urls.clear()
    hit = _urls[url] = (origin, target.encode("ascii"))
    return hit


def _request_head(method: str, origin: _Origin, target: bytes, headers, body: bytes | None) -> bytes:
    parts = [method.encode("ascii"), b" ", target, b" HTTP/1.1\r\nhost: ", origin.host_header, b"\r\n"]
    encoding_asked = False
    for name, value in (headers or {}).items():
        if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
            raise LocalProtocolError(f"header {name!r} holds a line break")
        try:
            parts.append(f"{name}: {value}\r\n".encode("latin-1"))
        except UnicodeEncodeError:
            raise LocalProtocolError(f"header {name!r} is not latin-1") from None
        encoding_asked = encoding_asked or name.lower() == "accept-encoding"
    if not encoding_asked:
        parts.append(b"accept-encoding: gzip, deflate\r\n")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        parts.append(b"content-length: %d\r\n" % len(body or b""))
    parts.append(b"\r\n")
    if body:
        parts.append(body)
    return b"".join(parts)


class _Exchange:
    """One request's answer on one connection: httptools calls the on_* methods as bytes arrive; the
    reader waits on `waiter` for the head, more body, the end or an error. One timer watches both
    the read timeout (since the last byte) and the whole call's deadline."""

    __slots__ = ("conn", "loop", "parser", "status", "raw_headers", "head_bytes", "headers", "head_done",
                 "complete", "error", "chunks", "buffered", "total", "cap", "waiter", "last_data", "deadline_at",
                 "read_timeout", "timer", "received", "until_eof", "decoder", "paused", "deadline", "slot")

    def __init__(self, conn, loop, deadline_at: float, deadline: float, read_timeout: float):
        self.conn = conn
        self.loop = loop
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.raw_headers = []
        self.head_bytes = 0
        self.headers = None
        self.head_done = self.complete = self.received = self.until_eof = self.paused = False
        self.error = None
        self.chunks = []
        self.buffered = self.total = 0
        self.cap = None  # the body's byte limit, once someone reads it whole
        self.waiter = None
        self.decoder = None
        self.slot = True  # it holds one of the client's slots until it ends
        now = loop.time()
        self.last_data = now
        self.deadline_at, self.deadline, self.read_timeout = deadline_at, deadline, read_timeout
        self.timer = loop.call_at(min(deadline_at, now + read_timeout), self._on_timer)

    # -- httptools callbacks --------------------------------------------------------------------
    def on_message_begin(self):
        if self.complete:  # bytes after the answer, in the same read: nothing asked for them
            self.conn.close()
            raise RemoteProtocolError("the upstream sent more than one answer")
        self.raw_headers = []
        self.head_bytes = 0

    def on_header(self, name: bytes, value: bytes):
        self.head_bytes += len(name) + len(value)
        if self.head_bytes > MAX_HEAD_BYTES:
            raise RemoteProtocolError(f"the upstream's headers are larger than {MAX_HEAD_BYTES} bytes")
        self.raw_headers.append((name, value))

    def on_headers_complete(self):
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            return  # an informational answer (100 Continue, 103 Early Hints): the real one follows
        headers = Headers()
        for name, value in self.raw_headers:
            key, text = name.decode("latin-1").lower(), value.decode("latin-1")
            previous = dict.get(headers, key)
            dict.__setitem__(headers, key, text if previous is None else f"{previous}, {text}")
        self.status, self.headers, self.head_done = status, headers, True
        self.until_eof = "content-length" not in headers and "chunked" not in headers.get("transfer-encoding", "")
        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding in ("gzip", "x-gzip", "deflate"):
            self.decoder = zlib.decompressobj(47 if encoding != "deflate" else zlib.MAX_WBITS)
        elif encoding not in ("", "identity"):
            raise DecodingError(f"the upstream answered in an encoding the gateway does not read ({encoding})")
        self._check_cap()
        self._wake()

    def on_body(self, data: bytes):
        if self.decoder is not None:
            try:
                data = self.decoder.decompress(data)
            except zlib.error as exc:
                raise DecodingError(f"the upstream's compressed body is broken: {exc}") from None
        if not data:
            return
        self.chunks.append(data)
        self.buffered += len(data)
        self.total += len(data)
        if self.cap is not None and self.total > self.cap:
            raise ResponseTooLarge(f"the upstream's body is over UPSTREAM_MAX_BODY_BYTES ({self.cap})")
        if self.buffered > STREAM_HIGH_WATER and self.cap is None and not self.paused:  # a stream nobody reads
            self.paused = True
            self.conn.transport.pause_reading()
        self._wake()

    def on_message_complete(self):
        if not self.head_done:
            return  # the end of an informational answer
        if self.decoder is not None:
            rest = self.decoder.flush()
            self.decoder = None
            if rest:
                self.on_body(rest)
        self.complete = True
        keep_alive = self.parser.should_keep_alive()
        self._end()
        self.conn.finished(self, keep_alive)
        self._wake()

    # -- events from the connection and the timer -----------------------------------------------
    def feed(self, data: bytes):
        self.received = True
        self.last_data = self.loop.time()
        parser = self.parser
        if parser is None:  # after the end: nothing more belongs to this answer
            return
        try:
            parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:  # raised by a callback above
            cause = exc.__cause__ or exc.__context__
            self.fail(cause if isinstance(cause, HTTPError) else RemoteProtocolError(str(exc)))
        except httptools.HttpParserError as exc:
            self.fail(RemoteProtocolError(f"the upstream's answer is not valid HTTP/1.1: {exc}"))

    def lost(self, exc: Exception | None):
        if self.complete or self.error is not None:
            return
        if self.head_done and self.until_eof and exc is None:
            try:
                self.on_message_complete()  # a body that ends when the connection does
            except HTTPError as error:  # its last compressed bytes took it over the cap
                self.fail(error)
            return
        self.fail(RemoteProtocolError("the upstream closed the connection before the answer was complete"
                                            + (f" ({exc})" if exc else "")))

    def _on_timer(self):
        if self.timer is None:
            return
        now = self.loop.time()
        if now >= self.deadline_at:
            self.fail(DeadlineExceeded(f"the upstream call took longer than its overall time budget "
                                       f"({self.deadline:g} s)"))
        elif now - self.last_data >= self.read_timeout:
            self.fail(ReadTimeout(f"the upstream sent nothing for {self.read_timeout:g} s"))
        else:
            self.timer = self.loop.call_at(min(self.deadline_at, self.last_data + self.read_timeout), self._on_timer)

    def fail(self, error: HTTPError):
        if self.complete or self.error is not None:
            return
        self.error = error
        self._end()
        self.conn.broken(self)
        self._wake()

    def _end(self):
        """Cancel the timer and let go of the parser: both point back here, and a cycle left per call
        would be the collector's work (bench/: ~14 objects a call)."""
        self.timer.cancel()
        self.timer = self.parser = None

    def _wake(self):
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _check_cap(self):
        if self.cap is None or not self.head_done:
            return
        declared = self.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.cap:
            raise ResponseTooLarge(f"the upstream's body of {declared} bytes is over UPSTREAM_MAX_BODY_BYTES")
        if self.total > self.cap:
            raise ResponseTooLarge(f"the upstream's body is over UPSTREAM_MAX_BODY_BYTES ({self.cap})")

    # -- the reader's side ----------------------------------------------------------------------
    async def wait(self):
        waiter = self.waiter = self.loop.create_future()
        try:
            await waiter
        except asyncio.CancelledError:
            self.abort()  # the caller went away mid-answer: the connection's state is unknown
            raise

    def take(self) -> bytes:
        chunks = self.chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.chunks = []
        self.buffered = 0
        self.resume()
        return data

    def resume(self):
        if self.paused and self.error is None and not self.complete:
            self.paused = False
            self.conn.transport.resume_reading()

    def abort(self):
        """Give up on this answer: the connection closes (its slot is freed with it)."""
        if not self.complete:
            self.fail(ReadError("the gateway stopped reading the upstream's answer"))


class _Connection(asyncio.Protocol):
    __slots__ = ("client", "origin", "loop", "transport", "exchange", "idle_since", "closed", "reused")

    def __init__(self, client: "LoopClient", origin: _Origin, loop):
        self.client, self.origin, self.loop = client, origin, loop
        self.transport = None
        self.exchange = None
        self.idle_since = 0.0
        self.closed = self.reused = False

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes):
        exchange = self.exchange
        if exchange is None:  # bytes nobody asked for (between answers): the connection can't be trusted
            self.transport.abort()
            return
        exchange.feed(data)

    def eof_received(self):
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc):
        self.closed = True
        exchange, self.exchange = self.exchange, None
        if exchange is not None:
            exchange.lost(exc)  # completes a read-until-close body, or fails the exchange (freeing its slot)

    def start(self, exchange: _Exchange, data: bytes):
        self.exchange = exchange
        self.transport.write(data)

    def finished(self, exchange: _Exchange, keep_alive: bool):
        """The answer is complete: the slot is free; the connection goes back to the pool if it may."""
        if self.exchange is exchange:
            self.exchange = None
        self.client._release_slot(exchange)
        if exchange.paused:  # all of it is in; the next answer on this connection must be read
            exchange.paused = False
            if not self.closed:
                self.transport.resume_reading()
        if keep_alive and not self.closed:
            self.idle_since = self.loop.time()
            self.client._put_idle(self)
        else:
            self.close()

    def broken(self, exchange: _Exchange):
        if self.exchange is exchange:
            self.exchange = None
        self.client._release_slot(exchange)
        self.close()

    def close(self):
        if not self.closed:
            self.closed = True
            self.transport.abort()


class Response:
    """What the gateway reads of an upstream answer (an httpx.Response's attributes)."""

    __slots__ = ("status_code", "headers", "content", "_exchange", "_read")

    def __init__(self, exchange: _Exchange):
        self._exchange = exchange
        self.status_code = exchange.status
        self.headers = exchange.headers
        self.content = b""
        self._read = False

    async def aread(self) -> bytes:
        if not self._read:
            exchange = self._exchange
            exchange.cap = settings.UPSTREAM_MAX_BODY_BYTES  # read whole: bounded by the cap, not paused
            if exchange.error is None:
                try:  # what came with the head (all of it, maybe) is checked here, the rest as it comes
                    exchange._check_cap()
                except ResponseTooLarge as exc:
                    exchange.fail(exc)
                    raise
                exchange.resume()
            while exchange.error is None and not exchange.complete:
                await exchange.wait()
            if exchange.error is not None:
                raise exchange.error
            self.content = exchange.take() if exchange.chunks else b""
            self._read = True
        return self.content

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        exchange = self._exchange
        while True:
            if exchange.chunks:
                yield exchange.take()
            elif exchange.error is not None:
                raise exchange.error
            elif exchange.complete:
                return
            else:
                await exchange.wait()

    async def aclose(self):
        self._exchange.abort()  # nothing once the answer is complete; otherwise the connection goes


def _tls_context() -> ssl.SSLContext:
    """The system's CAs (SSL_CERT_FILE/SSL_CERT_DIR honoured) and certifi's bundle (what httpx trusts), so
    that a slim image without system CAs still reaches the providers."""
    context = ssl.create_default_context()
    try:
        import certifi

        context.load_verify_locations(certifi.where())
    except (ImportError, OSError):
        pass
    context.set_alpn_protocols(["http/1.1"])
    return context


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


class LoopClient(ClientVerbs):
    """Every wait is bounded: a free slot among UPSTREAM_MAX_CONNECTIONS calls in flight
    (UPSTREAM_POOL_TIMEOUT), connecting (UPSTREAM_CONNECT_TIMEOUT), each read (UPSTREAM_TIMEOUT), the
    whole call, a stream's last byte included (UPSTREAM_DEADLINE); a non-streaming body is read up to
    UPSTREAM_MAX_BODY_BYTES. No proxy, no redirects followed, no cookies: a provider's answer is
    relayed as it is."""

    def __init__(self):
        self._idle: dict[tuple, list[_Connection]] = {}
        self._active = 0  # calls holding a slot
        self._waiters: deque[asyncio.Future] = deque()
        self._ssl: ssl.SSLContext | None = None

    # -- slots ----------------------------------------------------------------------------------
    async def _acquire_slot(self, loop):
        if self._active < settings.UPSTREAM_MAX_CONNECTIONS and not self._waiters:
            self._active += 1
            return
        waiter = loop.create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(settings.UPSTREAM_POOL_TIMEOUT):
                await waiter
        except (TimeoutError, asyncio.CancelledError) as exc:
            if waiter.done() and not waiter.cancelled():
                self._hand_on()  # a slot was handed to us just as we gave up: pass it on
            else:
                waiter.cancel()
                self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise PoolTimeout(f"no upstream connection free within {settings.UPSTREAM_POOL_TIMEOUT:g} s") \
                    from None
            raise

    def _hand_on(self):
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot changes hands; _active stays
                return
        self._active -= 1

    def _release_slot(self, exchange: _Exchange):
        if exchange.slot:
            exchange.slot = False
            self._hand_on()

    # -- connections ----------------------------------------------------------------------------
    def _put_idle(self, conn: _Connection):
        idle = self._idle.setdefault(conn.origin.key, [])
        if len(idle) >= MAX_IDLE_PER_ORIGIN:
            conn.close()
            return
        conn.reused = True
        idle.append(conn)

    def _take_idle(self, origin: _Origin, now: float) -> _Connection | None:
        idle = self._idle.get(origin.key)
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < KEEPALIVE_SECONDS and not conn.transport.is_closing():
                return conn
            conn.close()
        return None

    async def _connect(self, loop, origin: _Origin, deadline_at: float) -> _Connection:
        budget = min(settings.UPSTREAM_CONNECT_TIMEOUT, max(0.0, deadline_at - loop.time()))
        tls = None
        if origin.tls:
            if self._ssl is None:
                self._ssl = _tls_context()
            tls = self._ssl
        try:
            async with asyncio.timeout(budget):
                _, conn = await loop.create_connection(lambda: _Connection(self, origin, loop), origin.host,
                                                       origin.port, ssl=tls,
                                                       server_hostname=origin.host if tls else None)
        except TimeoutError:
            if budget < settings.UPSTREAM_CONNECT_TIMEOUT:
                raise DeadlineExceeded("the upstream call took longer than its overall time budget") from None
            raise ConnectTimeout(f"connecting took longer than {budget:g} s") from None
        except (OSError, ssl.SSLError) as exc:
            raise ConnectError(str(exc) or type(exc).__name__) from None
        return conn

    # -- the API --------------------------------------------------------------------------------
    async def send(self, request: Prepared, stream: bool = False, timeout: float | None = None) -> Response:
        origin, target = _parse_url(request.url)
        data = _request_head(request.method, origin, target, request.headers, request.content)
        loop = asyncio.get_running_loop()
        deadline = settings.UPSTREAM_DEADLINE if timeout is None else timeout
        deadline_at = loop.time() + deadline
        read_timeout = settings.UPSTREAM_TIMEOUT if timeout is None else min(timeout, settings.UPSTREAM_TIMEOUT)
        await self._acquire_slot(loop)
        owned = True  # a slot this call holds that no exchange holds yet
        exchange = None
        try:
            for attempt in (1, 2):
                if not owned:
                    await self._acquire_slot(loop)
                    owned = True
                conn = self._take_idle(origin, loop.time()) or await self._connect(loop, origin, deadline_at)
                exchange = _Exchange(conn, loop, deadline_at, deadline, read_timeout)
                owned = False  # the exchange frees it when it ends, however it ends
                conn.start(exchange, data)
                while not exchange.head_done and exchange.error is None:
                    await exchange.wait()
                if exchange.error is None:
                    break
                # A pooled connection the upstream had closed just before we wrote (no byte came
                # back): once more on a new one. Anything else is the caller's to handle.
                if attempt == 2 or not conn.reused or exchange.received or not isinstance(
                        exchange.error, RemoteProtocolError):
                    raise exchange.error
        except BaseException:
            if owned:
                self._hand_on()
            if exchange is not None:
                exchange.abort()
            raise
        response = Response(exchange)
        if not stream:
            try:
                await response.aread()
            finally:
                await response.aclose()
        return response

    async def aclose(self):
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()
