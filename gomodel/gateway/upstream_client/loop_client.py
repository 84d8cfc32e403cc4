"""The gateway's own upstream client: HTTP/1.1 on the event loop itself, over asyncio transports, parsed by
httptools, a keep-alive pool per origin. bench/micro.py measured the CPU of one pooled call at c=64: this
client ~15-25 µs, pyreqwest 37 µs, aiohttp 55 µs, httpx 183-913 µs (README, "What decided the design").

This module holds what goes on the wire (Origin, UrlCache, request_head), the connections and their bounds
(Connection, IdlePool, Slots) and the client (LoopClient, Response); answer.py holds one answer's parts;
proxy.py and tls.py the network around it. (Two modules for a warm call, not one per part: a call's code
should span few files, tests/e2e/test_request_walk.py.)"""

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import quote, urlsplit

from django.conf import settings

from ..upstream_errors import (
    ConnectError,
    ConnectTimeout,
    DeadlineExceeded,
    LocalProtocolError,
    PoolTimeout,
    RemoteProtocolError,
    ResponseTooLarge,
    UnsupportedProtocol,
)
from .answer import AnswerParser, Exchange
from .api import UpstreamResponse
from .bounds import INFLATE_SLICE, KEEPALIVE_SECONDS, MAX_IDLE_PER_ORIGIN, STREAM_SLICE, YIELD_EVERY
from .proxy import Proxy, ProxyRules, TunnelReply, connect_request
from .tls import tls_context


class Prepared:
    __slots__ = ("method", "url", "headers", "content")

    def __init__(self, method, url, headers, content):
        self.method, self.url, self.headers, self.content = method, url, headers, content


R = TypeVar("R", bound=UpstreamResponse)


async def unless_streamed(response: R, stream: bool) -> R:
    """What every client's `send` ends with: a non-streaming answer read whole (and its connection given back)."""
    if not stream:
        try:
            await response.aread()
        finally:
            await response.aclose()
    return response


class ClientVerbs:
    """`build_request`, `request`, `get`, `post` and `async with`, over a client's `send`."""

    if TYPE_CHECKING:  # what a client gives (LoopClient, AiohttpClient)
        async def send(self, request: Prepared, stream: bool = False,
                       timeout: float | None = None) -> UpstreamResponse: ...

        async def aclose(self) -> None: ...

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


# -- the wire ------------------------------------------------------------------------------------------------------
# What goes on the wire for a request: where a URL leads (its origin, and the proxy on the way, if any) and the
# request's head.


class Origin:
    """scheme://host:port, and how it is reached: directly, through a CONNECT tunnel (https) or by a
    forwarding proxy (http: the request's target is then the absolute URL)."""

    __slots__ = ("key", "host", "port", "tls", "host_header", "proxy", "forward_prefix")

    def __init__(self, host: str, port: int, tls: bool, host_header: bytes, proxy: Proxy | None = None):
        self.key = (tls, host, port, proxy.key if proxy is not None else None)
        self.host, self.port, self.tls, self.host_header, self.proxy = host, port, tls, host_header, proxy
        self.forward_prefix = b"http://" + host_header if proxy is not None and not tls else None


URL_CACHE_SIZE = 4096


class UrlCache:
    """(origin, request target) of a URL; cached, since a provider's URLs repeat."""

    __slots__ = ("_urls", "_proxies")

    def __init__(self, proxies: ProxyRules):
        self._urls: dict[str, tuple[Origin, bytes]] = {}
        self._proxies = proxies

    def parse(self, url: str) -> tuple[Origin, bytes]:
        hit = self._urls.get(url)
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
        port = port or (443 if tls else 80)
        target = quote((parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
                       safe="/:?#[]@!$&'()*+,;=%-._~").encode("ascii")
        netloc = parts.netloc.rsplit("@", 1)[-1]  # never send user:password@ as the Host
        host_header = netloc.encode("ascii") if netloc.isascii() else netloc.encode("idna")
        origin = Origin(host, port, tls, host_header, self._proxies.for_url(tls, host, port))
        if origin.forward_prefix is not None:
            target = origin.forward_prefix + target
        if len(self._urls) >= URL_CACHE_SIZE:
            self._urls.clear()
        hit = self._urls[url] = (origin, target)
        return hit


def request_head(method: str, origin: Origin, target: bytes, headers, body: bytes | None) -> bytes:
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
    proxy = origin.proxy
    if origin.forward_prefix is not None and proxy is not None and proxy.auth:  # a forward prefix: a proxy
        parts.append(b"proxy-authorization: " + proxy.auth.encode("ascii") + b"\r\n")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        parts.append(b"content-length: %d\r\n" % len(body or b""))
    parts.append(b"\r\n")
    if body:
        parts.append(body)
    return b"".join(parts)


# -- connections ---------------------------------------------------------------------------------------------------
# Connections to upstreams and what bounds them: the asyncio protocol of one connection (which owns the socket's
# reading state and the answer parser), the keep-alive pool of idle connections per origin, and the slots that bound
# the calls in flight (UPSTREAM_MAX_CONNECTIONS, waited for up to UPSTREAM_POOL_TIMEOUT).


class Connection(asyncio.Protocol):
    __slots__ = ("pool", "origin", "loop", "transport", "parser", "exchange", "idle_since", "closed", "reused",
                 "paused")

    def __init__(self, pool: "IdlePool", origin, loop):
        self.pool, self.origin, self.loop = pool, origin, loop
        self.transport: asyncio.Transport | None = None  # until connection_made: before any other use
        self.parser = AnswerParser()
        self.exchange: Exchange | None = None
        self.idle_since = 0.0
        self.closed = self.reused = False
        self.paused = 0  # why the socket is not read (Exchange's UNREAD | BACKLOG bits)

    # -- asyncio's side -----------------------------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes):
        exchange = self.exchange
        if exchange is None:  # bytes nobody asked for (between answers): the connection can't be trusted
            self.close()
            return
        exchange.feed(data)

    def eof_received(self):
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc):
        self.closed = True
        exchange, self.exchange = self.exchange, None
        self.parser.stop()
        if exchange is not None:
            exchange.lost(exc)  # completes a read-until-close body, or fails the exchange (freeing its slot)

    def pause_writing(self):
        if self.exchange is not None:
            self.exchange.write_blocked()

    def resume_writing(self):
        if self.exchange is not None:
            self.exchange.write_unblocked()

    # -- the exchange's side ------------------------------------------------------------------------
    def start(self, exchange, data: bytes):
        self.exchange = exchange
        self.parser.start(exchange, exchange.buffer.append)  # the body goes straight to the exchange's buffer
        transport = self.transport
        assert transport is not None  # connected
        transport.write(data)

    def unsent(self) -> int:
        """Bytes written and not sent yet."""
        transport = self.transport
        assert transport is not None  # connected
        return transport.get_write_buffer_size() if not self.closed else 0

    def pause_reading(self, reason: int):
        if not self.paused and not self.closed:
            assert self.transport is not None  # connected
            self.transport.pause_reading()
        self.paused |= reason

    def resume_reading(self, reason: int):
        if self.paused & reason:
            self.paused &= ~reason
            if not self.paused and not self.closed:
                assert self.transport is not None  # connected
                self.transport.resume_reading()

    def finished(self, exchange, keep_alive: bool):
        """The answer is complete: the connection goes back to the pool if it may."""
        if self.exchange is exchange:
            self.exchange = None
        self.parser.stop()
        if self.paused:  # all of it is in; the next answer on this connection must be read
            self.paused = 0
            if not self.closed:
                assert self.transport is not None  # connected
                self.transport.resume_reading()
        if keep_alive and not self.closed:
            self.idle_since = self.loop.time()
            self.pool.put(self)
        else:
            self.close()

    def broken(self, exchange):
        if self.exchange is exchange:
            self.exchange = None
        self.parser.stop()
        self.close()

    def close(self):
        if not self.closed:
            self.closed = True
            assert self.transport is not None  # connected
            self.transport.abort()


class IdlePool:
    """Idle kept-alive connections per origin (the most recently used first)."""

    __slots__ = ("_idle",)

    def __init__(self):
        self._idle: dict[tuple, list[Connection]] = {}

    def put(self, conn: Connection):
        idle = self._idle.setdefault(conn.origin.key, [])
        if len(idle) >= MAX_IDLE_PER_ORIGIN:
            conn.close()
            return
        conn.reused = True
        idle.append(conn)

    def take(self, origin, now: float) -> Connection | None:
        idle = self._idle.get(origin.key)
        while idle:
            conn = idle.pop()
            transport = conn.transport
            assert transport is not None  # a pooled connection was connected
            if not conn.closed and now - conn.idle_since < KEEPALIVE_SECONDS and not transport.is_closing():
                return conn
            conn.close()
        return None

    def count(self, origin) -> int:
        return len(self._idle.get(origin.key, ()))

    def close_all(self):
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()


class Slots:
    """At most UPSTREAM_MAX_CONNECTIONS calls in flight; a call waits its turn (first come, first served) up
    to UPSTREAM_POOL_TIMEOUT. A freed slot is handed to the next waiter directly."""

    __slots__ = ("in_use", "_waiters")

    def __init__(self):
        self.in_use = 0
        self._waiters: deque[asyncio.Future] = deque()

    async def acquire(self, loop):
        if self.in_use < settings.UPSTREAM_MAX_CONNECTIONS and not self._waiters:
            self.in_use += 1
            return
        waiter = loop.create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(settings.UPSTREAM_POOL_TIMEOUT):
                await waiter
        except (TimeoutError, asyncio.CancelledError) as exc:
            if waiter.done() and not waiter.cancelled():
                self.release()  # a slot was handed to us just as we gave up: pass it on
            else:
                waiter.cancel()
                self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise PoolTimeout(f"no upstream connection free within {settings.UPSTREAM_POOL_TIMEOUT:g} s") \
                    from None
            raise

    def release(self):
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot changes hands; in_use stays
                return
        self.in_use -= 1


# -- the client ----------------------------------------------------------------------------------------------------
# The client and what its caller reads of an answer.


class Response:
    """What the gateway reads of an upstream answer (an httpx.Response's attributes)."""

    __slots__ = ("status_code", "headers", "content", "_exchange", "_read")
    headers: Mapping[str, str]  # answer.Headers (api.UpstreamResponse)

    def __init__(self, exchange: Exchange):
        self._exchange = exchange
        self.status_code = exchange.status
        headers = exchange.headers
        assert headers is not None  # made once the head came
        self.headers = headers
        self.content = b""
        self._read = False

    async def aread(self) -> bytes:
        if self._read:
            return self.content
        exchange = self._exchange
        cap = settings.UPSTREAM_MAX_BODY_BYTES  # read whole: bounded by the cap, not paused
        exchange.read_whole(cap)
        if exchange.inflater is None:
            while exchange.error is None and not exchange.complete:
                await exchange.wait()
            if exchange.error is not None:
                raise exchange.error
            self.content = exchange.take_all()
        else:
            self.content = await self._inflate_whole(exchange, cap)
        self._read = True
        return self.content

    @staticmethod
    async def _inflate_whole(exchange: Exchange, cap: int) -> bytes:
        """A compressed body, decompressed as it arrives a slice at a time: never past the cap, and the loop
        runs between slices."""
        out = bytearray()
        since_yield = 0
        while True:
            piece = exchange.next_piece(INFLATE_SLICE)
            if piece:
                out += piece
                if len(out) > cap:
                    error = ResponseTooLarge(f"the upstream's body is over UPSTREAM_MAX_BODY_BYTES ({cap}) once "
                                             "decompressed")
                    exchange.fail(error)
                    raise error
                since_yield += len(piece)
                if since_yield >= YIELD_EVERY:
                    since_yield = 0
                    await asyncio.sleep(0)
            elif exchange.error is not None:
                raise exchange.error
            elif exchange.complete:
                return bytes(out)
            else:
                await exchange.wait()
                since_yield = 0

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body as it comes, decompressed, in pieces of at most STREAM_SLICE bytes; between two pieces
        that were already here, the event loop runs (what the reader does with a piece is its own cost)."""
        exchange = self._exchange
        waited = True
        buffer = exchange.buffer
        while True:
            piece = exchange.next_piece(STREAM_SLICE) if buffer.size or exchange.inflater is not None else b""
            if piece:
                if not waited:
                    await asyncio.sleep(0)
                waited = False
                yield piece
            elif exchange.error is not None:
                raise exchange.error
            elif exchange.complete:
                return
            else:
                await exchange.wait()
                waited = True

    async def aclose(self):
        self._exchange.abort()  # nothing once the answer is complete; otherwise the connection goes


class LoopClient(ClientVerbs):
    """Every wait is bounded: a free slot among UPSTREAM_MAX_CONNECTIONS calls in flight
    (UPSTREAM_POOL_TIMEOUT), connecting (UPSTREAM_CONNECT_TIMEOUT), each read (UPSTREAM_TIMEOUT), a write the
    upstream does not take (UPSTREAM_WRITE_TIMEOUT), the whole call, a stream's last byte included
    (UPSTREAM_DEADLINE); a non-streaming body is read up to UPSTREAM_MAX_BODY_BYTES. Proxies from
    HTTPS_PROXY / HTTP_PROXY / NO_PROXY; no redirects followed, no cookies: a provider's answer is
    relayed as it is."""

    def __init__(self):
        self.proxies = ProxyRules(settings.HTTPS_PROXY, settings.HTTP_PROXY, settings.NO_PROXY)
        self.slots = Slots()
        self._pool = IdlePool()
        self._urls = UrlCache(self.proxies)
        self._ssl: ssl.SSLContext | None = None

    @property
    def in_flight(self) -> int:
        return self.slots.in_use

    def idle_count(self, url: str) -> int:
        return self._pool.count(self._urls.parse(url)[0])

    # -- connecting ---------------------------------------------------------------------------------
    async def _connect(self, loop, origin: Origin, deadline_at: float) -> Connection:
        budget = min(settings.UPSTREAM_CONNECT_TIMEOUT, max(0.0, deadline_at - loop.time()))
        tls = None
        if origin.tls:
            if self._ssl is None:
                self._ssl = tls_context()
            tls = self._ssl
        proxy = origin.proxy
        via = f" through the proxy {proxy.label}" if proxy is not None else ""
        try:
            async with asyncio.timeout(budget):
                if proxy is None:
                    _, conn = await loop.create_connection(lambda: Connection(self._pool, origin, loop), origin.host,
                                                           origin.port, ssl=tls,
                                                           server_hostname=origin.host if tls else None)
                elif not tls:  # plain http: the proxy forwards absolute-form requests
                    _, conn = await loop.create_connection(lambda: Connection(self._pool, origin, loop), proxy.host,
                                                           proxy.port)
                else:
                    conn = await self._tunnel(loop, origin, tls)
        except TimeoutError:
            if budget < settings.UPSTREAM_CONNECT_TIMEOUT:
                raise DeadlineExceeded("the upstream call took longer than its overall time budget") from None
            raise ConnectTimeout(f"connecting{via} took longer than {budget:g} s") from None
        except (OSError, ssl.SSLError) as exc:
            raise ConnectError(f"{exc or type(exc).__name__}{via}") from None
        return conn

    async def _tunnel(self, loop, origin: Origin, tls: ssl.SSLContext) -> Connection:
        """A CONNECT tunnel through the proxy, then TLS to the provider inside it (SNI and verification
        against the provider's name)."""
        proxy = origin.proxy
        assert proxy is not None  # a tunnel goes through a proxy
        authority = f"{origin.host}:{origin.port}"
        transport, reply = await loop.create_connection(lambda: TunnelReply(loop, proxy, authority), proxy.host,
                                                        proxy.port)
        try:
            transport.write(connect_request(proxy, origin.host, origin.port))
            await reply.established
            conn = Connection(self._pool, origin, loop)
            tls_transport = await loop.start_tls(transport, conn, tls, server_hostname=origin.host)
        except BaseException:
            transport.abort()
            raise
        conn.connection_made(tls_transport)
        return conn

    # -- the API ------------------------------------------------------------------------------------
    async def send(self, request: Prepared, stream: bool = False, timeout: float | None = None) -> Response:
        origin, target = self._urls.parse(request.url)
        data = request_head(request.method, origin, target, request.headers, request.content)
        loop = asyncio.get_running_loop()
        deadline = settings.UPSTREAM_DEADLINE if timeout is None else timeout
        deadline_at = loop.time() + deadline
        read_timeout = settings.UPSTREAM_TIMEOUT if timeout is None else min(timeout, settings.UPSTREAM_TIMEOUT)
        slots = self.slots
        await slots.acquire(loop)
        owned = True  # a slot this call holds that no exchange holds yet
        exchange: Exchange | None = None
        try:
            for attempt in (1, 2):
                if not owned:
                    await slots.acquire(loop)
                    owned = True
                conn = self._pool.take(origin, loop.time()) or await self._connect(loop, origin, deadline_at)
                exchange = Exchange(conn, loop, slots, deadline_at, deadline, read_timeout)
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
                slots.release()
            if exchange is not None:
                exchange.abort()
            raise
        assert exchange is not None  # the loop ran: its last exchange has its head
        return await unless_streamed(Response(exchange), stream)

    async def aclose(self):
        self._pool.close_all()
