"""Connections to upstreams and what bounds them: the asyncio protocol of one connection (which owns the
socket's reading state and the answer parser), the keep-alive pool of idle connections per origin, and the
slots that bound the calls in flight (UPSTREAM_MAX_CONNECTIONS, waited for up to UPSTREAM_POOL_TIMEOUT)."""

import asyncio
from collections import deque

from django.conf import settings

from ..upstream_errors import PoolTimeout
from .bounds import KEEPALIVE_SECONDS, MAX_IDLE_PER_ORIGIN
from .parse import AnswerParser


class Connection(asyncio.Protocol):
    __slots__ = ("pool", "origin", "loop", "transport", "parser", "exchange", "idle_since", "closed", "reused",
                 "paused")

    def __init__(self, pool: "IdlePool", origin, loop):
        self.pool, self.origin, self.loop = pool, origin, loop
        self.transport = None
        self.parser = AnswerParser()
        self.exchange = None
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
        self.transport.write(data)

    def unsent(self) -> int:
        """Bytes written and not sent yet."""
        return self.transport.get_write_buffer_size() if not self.closed else 0

    def pause_reading(self, reason: int):
        if not self.paused and not self.closed:
            self.transport.pause_reading()
        self.paused |= reason

    def resume_reading(self, reason: int):
        if self.paused & reason:
            self.paused &= ~reason
            if not self.paused and not self.closed:
                self.transport.resume_reading()

    def finished(self, exchange, keep_alive: bool):
        """The answer is complete: the connection goes back to the pool if it may."""
        if self.exchange is exchange:
            self.exchange = None
        self.parser.stop()
        if self.paused:  # all of it is in; the next answer on this connection must be read
            self.paused = 0
            if not self.closed:
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
            if not conn.closed and now - conn.idle_since < KEEPALIVE_SECONDS and not conn.transport.is_closing():
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
