"""The gateway's own upstream client: HTTP/1.1 on the event loop itself, over asyncio transports, parsed by
httptools, a keep-alive pool per origin. bench/micro.py measured the CPU of one pooled call at c=64: this
client ~15-25 µs, pyreqwest 37 µs, aiohttp 55 µs, httpx 183-913 µs (README, "What decided the design").

Its parts: parse.py (the framing and the head bounds), body.py (the body buffer and bounded
decompression), timers.py (read, write and deadline bounds), exchange.py (one answer, between them),
connection.py (the socket, the idle pool and the slots), proxy.py and tls.py (the network around it)."""

import asyncio
import ssl
from collections.abc import AsyncIterator

from django.conf import settings

from ..upstream_errors import ConnectError, ConnectTimeout, DeadlineExceeded, RemoteProtocolError, ResponseTooLarge
from .api import ClientVerbs, Prepared
from .bounds import INFLATE_SLICE, STREAM_SLICE, YIELD_EVERY
from .connection import Connection, IdlePool, Slots
from .exchange import Exchange
from .proxy import ProxyRules, TunnelReply, connect_request
from .tls import tls_context
from .wire import Origin, UrlCache, request_head


class Response:
    """What the gateway reads of an upstream answer (an httpx.Response's attributes)."""

    __slots__ = ("status_code", "headers", "content", "_exchange", "_read")

    def __init__(self, exchange: Exchange):
        self._exchange = exchange
        self.status_code = exchange.status
        self.headers = exchange.headers
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
        exchange = None
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
        response = Response(exchange)
        if not stream:
            try:
                await response.aread()
            finally:
                await response.aclose()
        return response

    async def aclose(self):
        self._pool.close_all()
