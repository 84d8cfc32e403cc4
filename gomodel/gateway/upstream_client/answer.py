"""One answer of the gateway's own upstream client, from the bytes a connection reads to what its reader takes:
the framing and its head bounds (AnswerParser), the body buffer and its bounded decompression (BodyBuffer,
Inflater), the call's time bounds (TimeBounds) and the exchange between them (Exchange). Each part talks to
the others through public methods only. (One module, not one per part: a warm call's code should span few
files, tests/e2e/test_request_walk.py.)"""

import asyncio
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import httptools
from django.conf import settings

from ..upstream_errors import (
    DeadlineExceeded,
    DecodingError,
    HTTPError,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    ResponseTooLarge,
    WriteTimeout,
)
from .bounds import MAX_HEAD_BYTES, MAX_HEADERS, PARSE_SLICE, STREAM_HIGH_WATER


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


# -- the framing ---------------------------------------------------------------------------------------------------
# Reading an answer's framing: httptools' response parser (llhttp, what uvicorn reads requests with) behind the head
# bounds, every way it can fail a typed upstream error.  The head (status line and headers, informational answers
# before it included) is bounded *before* the parser sees the bytes: at most MAX_HEAD_BYTES are fed until the head
# is complete, so a header line that never ends costs 64 KiB, not what httptools would keep appending to
# (quadratically). The number of header lines is capped too. A `101 Switching Protocols`, which no API call asks
# for, is an error, not an escaping HttpParserUpgrade.


class AnswerParser:
    """Parses the answers on one connection, one at a time. `start(sink, body)` before each: the sink's `head`
    and `end`, and `body`, are called as the answer arrives. `feed` raises an HTTPError for anything the answer
    may not be; the connection is then unusable."""

    __slots__ = ("_parser", "_sink", "_body", "_head_left", "_raw_headers", "_head_done", "_done")

    def __init__(self):
        self._parser = httptools.HttpResponseParser(self)
        self._sink: Exchange | None = None
        self._body: Callable[[bytes], None] | None = None

    def start(self, sink: "Exchange", body: Callable[[bytes], None]):
        self._sink = sink
        self._body = body
        self._head_left = MAX_HEAD_BYTES
        self._raw_headers: list[tuple[bytes, bytes]] | None = []
        self._head_done = self._done = False

    def stop(self):
        self._sink = self._body = None  # the answer is over: nothing more is delivered (and no cycle is left)

    def feed(self, data):
        if self._head_done:
            try:
                self._parser.feed_data(data)
            except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
                raise _typed(exc) from None
            return
        left = self._head_left
        if len(data) <= left:
            try:
                self._parser.feed_data(data)
            except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
                raise _typed(exc) from None
            if not self._head_done:
                self._head_left = left - len(data)
            return
        self._feed(data[:left])  # the head ends here, or it is too large
        if not self._head_done:
            raise RemoteProtocolError(f"the upstream's status line and headers are larger than {MAX_HEAD_BYTES} bytes")
        self._feed(data[left:])

    def _feed(self, data):
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            raise _typed(exc) from None

    # -- httptools callbacks --------------------------------------------------------------------
    def on_message_begin(self):
        if self._done:  # bytes after the answer: nothing asked for them
            raise RemoteProtocolError("the upstream sent more than one answer")
        self._raw_headers = []

    def on_header(self, name: bytes, value: bytes):
        raw = self._raw_headers
        assert raw is not None  # set by on_message_begin, before any header
        raw.append((name, value))
        if len(raw) > MAX_HEADERS:
            raise RemoteProtocolError(f"the upstream sent more than {MAX_HEADERS} headers")

    def on_headers_complete(self):
        status = self._parser.get_status_code()
        if status == 101:
            raise RemoteProtocolError("the upstream switched protocols (HTTP 101), which an API call never asks for")
        if 100 <= status < 200:
            return  # an informational answer (100 Continue, 103 Early Hints): the real one follows
        headers = Headers()
        sink, raw = self._sink, self._raw_headers
        assert sink is not None and raw is not None  # the callbacks come between start() and stop()
        for name, value in raw:
            key, text = name.decode("latin-1").lower(), value.decode("latin-1")
            previous = dict.get(headers, key)
            dict.__setitem__(headers, key, text if previous is None else f"{previous}, {text}")
        self._raw_headers = None
        self._head_done = True
        sink.head(status, headers)

    def on_body(self, data: bytes):
        body = self._body
        assert body is not None  # the callbacks come between start() and stop()
        body(data)

    def on_message_complete(self):
        if not self._head_done:
            return  # the end of an informational answer
        self._done = True
        sink = self._sink
        assert sink is not None  # the callbacks come between start() and stop()
        sink.end(self._parser.should_keep_alive())


def _typed(exc: Exception) -> HTTPError:
    """The upstream error an httptools exception is."""
    if isinstance(exc, httptools.HttpParserCallbackError):  # raised by a callback above
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, HTTPError):
            return cause
        return RemoteProtocolError(f"the upstream's answer could not be read: {cause or exc}")
    if isinstance(exc, httptools.HttpParserUpgrade):
        return RemoteProtocolError("the upstream switched protocols (HTTP 101), which an API call never asks for")
    return RemoteProtocolError(f"the upstream's answer is not valid HTTP/1.1: {exc}")


# -- the body ------------------------------------------------------------------------------------------------------
# An answer's body between the socket and its reader: the bytes received and not yet taken (O(bytes), however the
# upstream chunked them), and their decompression, which never produces more than it is asked for in one call
# (`decompress(max_length=…)`, the rest of the input kept for the next): a gzip bomb expands only as fast, and only
# as far, as its reader takes it.


COALESCE = 64  # chunks kept as they came before they are folded into the buffer's one bytearray


class BodyBuffer:
    """Bytes received and not yet taken, O(bytes) however the upstream chunked them: chunks are kept as they
    came (the usual answer, a few chunks: no copy until taken, as a list join) until COALESCE of them wait,
    then folded into one bytearray, so a body in a million 1-byte chunks is a million bytes, not a million
    objects."""

    __slots__ = ("_chunks", "_more", "size", "total")

    def __init__(self):
        self._chunks: list[bytes] = []  # the newest bytes, as they came (fewer than COALESCE)
        self._more: bytearray | None = None  # the older bytes, folded
        self.size = 0  # bytes held now
        self.total = 0  # bytes ever received

    def append(self, data: bytes):
        size = len(data)
        self.size += size
        self.total += size
        chunks = self._chunks
        chunks.append(data)
        if len(chunks) >= COALESCE:
            self._fold()

    def _fold(self):
        chunks = self._chunks
        if self._more is None:
            self._more = bytearray().join(chunks)
        else:
            self._more += b"".join(chunks)
        chunks.clear()

    def take(self, limit: int | None = None) -> bytes:
        """Up to `limit` bytes (all when None) from the front; b"" when empty."""
        chunks = self._chunks
        if self._more is None:
            if not chunks:
                return b""
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            if limit is None or len(data) <= limit:
                chunks.clear()
                self.size = 0
                return data
            self._more = bytearray(data)
            chunks.clear()
        elif chunks:
            self._fold()
        more = self._more
        if limit is None or len(more) <= limit:
            self._more = None
            self.size = 0
            return bytes(more)
        data = bytes(more[:limit])
        del more[:limit]  # from the front of a bytearray: no move of the rest
        self.size -= limit
        return data


ENCODINGS = {"gzip": 47, "x-gzip": 47, "deflate": zlib.MAX_WBITS}  # zlib's wbits: 47 = gzip or zlib header


class Inflater:
    """A gzip or deflate body, decompressed a bounded slice at a time."""

    __slots__ = ("_zlib", "_input", "_more")

    def __init__(self, encoding: str):
        self._zlib = zlib.decompressobj(ENCODINGS[encoding])
        self._input = b""
        self._more = False  # the last call filled its slice: zlib may hold output for input it has taken

    @property
    def pending(self) -> bool:
        return bool(self._input) or self._more

    def feed(self, data: bytes):
        self._input = self._input + data if self._input else data

    def inflate(self, limit: int) -> bytes:
        if not self.pending:
            return b""
        try:
            out = self._zlib.decompress(self._input, limit)
        except zlib.error as exc:
            self._input, self._more = b"", False
            raise DecodingError(f"the upstream's compressed body is broken: {exc}") from None
        self._input = self._zlib.unconsumed_tail
        self._more = len(out) >= limit
        return out


# -- the time bounds -----------------------------------------------------------------------------------------------
# One timer per upstream call for all its time bounds: the read timeout (since the last byte), the write timeout
# (while the socket's buffer is full: since its bytes last moved) and the call's deadline. It is rescheduled only
# when it fires, so a byte arriving costs a clock read, not a timer. A base of the exchange (below) rather
# than an object of its own: the hot path makes one object a call, not two. What it needs of its subclass: `loop`,
# `fail(error)` (called once, with the bound that ran out) and `unsent()` (bytes written and not sent yet).


class TimeBounds:
    __slots__ = ("_handle", "deadline_at", "deadline", "read_timeout", "last_data", "write_timeout",
                 "write_blocked_at", "unsent_then")
    _handle: asyncio.TimerHandle | None
    write_blocked_at: float | None
    write_timeout: float
    unsent_then: int

    if TYPE_CHECKING:  # what it needs of its subclass (above)
        loop: asyncio.AbstractEventLoop

        def unsent(self) -> int: ...

        def fail(self, error: HTTPError) -> None: ...

    def start_timer(self, deadline_at: float, deadline: float, read_timeout: float):
        now = self.loop.time()
        self.deadline_at, self.deadline, self.read_timeout, self.last_data = deadline_at, deadline, read_timeout, now
        self.write_blocked_at = None
        self._handle = self.loop.call_at(min(deadline_at, now + read_timeout), self._fire)

    def touch(self):
        """Bytes arrived (or the reader let more arrive): the read timeout starts again."""
        self.last_data = self.loop.time()

    def write_blocked(self):
        now = self.loop.time()
        self.write_timeout = settings.UPSTREAM_WRITE_TIMEOUT  # read here: a write rarely blocks
        self.write_blocked_at, self.unsent_then = now, self.unsent()
        handle = self._handle
        if handle is not None and handle.when() > now + self.write_timeout:
            handle.cancel()
            self._handle = self.loop.call_at(now + self.write_timeout, self._fire)

    def write_unblocked(self):
        self.write_blocked_at = None

    def stop_timer(self):
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self):
        if self._handle is None:
            return
        now = self.loop.time()
        blocked = self.write_blocked_at is not None and now - self.write_blocked_at >= self.write_timeout
        error: HTTPError
        if now >= self.deadline_at:
            error = DeadlineExceeded(f"the upstream call took longer than its overall time budget "
                                     f"({self.deadline:g} s)")
        elif blocked and self.unsent() >= self.unsent_then:
            error = WriteTimeout(f"the upstream took none of the request for {self.write_timeout:g} s")
        elif now - self.last_data >= self.read_timeout:
            error = ReadTimeout(f"the upstream sent nothing for {self.read_timeout:g} s")
        else:
            if blocked:
                self.write_blocked_at, self.unsent_then = now, self.unsent()  # it moved: a new window
            when = min(self.deadline_at, self.last_data + self.read_timeout)
            if self.write_blocked_at is not None:
                when = min(when, self.write_blocked_at + self.write_timeout)
            self._handle = self.loop.call_at(when, self._fire)
            return
        self._handle = None
        self.fail(error)


# -- the exchange --------------------------------------------------------------------------------------------------
# One request's answer on one connection, between the parser (which calls `head` and `end`, and puts the body in
# `buffer`: each read's body is then checked against the bounds at once), the connection (`feed`, `lost`,
# `write_blocked`/`write_unblocked`), the call's timer (TimeBounds, its base, which calls `fail`) and the reader
# (gomodel/gateway/upstream_client/loop_client.py's Response: `wait`, `next_piece`, `take_all`). No read holds the
# event loop for long: a read larger than PARSE_SLICE is parsed a slice per loop turn (the socket paused meanwhile),
# and the body is decompressed by the reader a slice at a time. A stream nobody reads stops the socket above
# STREAM_HIGH_WATER.


UNREAD = 1  # reasons a connection stops reading its socket (Connection.pause_reading)
BACKLOG = 2


class Exchange(TimeBounds):
    __slots__ = ("conn", "loop", "slots", "slot", "status", "headers", "head_done", "complete", "error",
                 "waiter", "received", "until_eof", "buffer", "inflater", "cap", "backlog", "lost_exc")

    def __init__(self, conn, loop, slots, deadline_at: float, deadline: float, read_timeout: float):
        self.conn = conn
        self.loop = loop
        self.slots = slots
        self.slot = True  # it holds one of the client's slots until it ends
        self.status = 0
        self.headers: Headers | None = None
        self.head_done = self.complete = self.received = self.until_eof = False
        self.error: HTTPError | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.buffer = BodyBuffer()
        self.inflater: Inflater | None = None
        self.cap: int | None = None  # the body's byte limit, once someone reads it whole
        self.backlog: bytearray | None = None  # bytes read from the socket and not parsed yet
        self.lost_exc: tuple[Exception | None] | None = None
        self.start_timer(deadline_at, deadline, read_timeout)

    @property
    def buffered(self) -> int:
        return self.buffer.size

    # -- from the parser --------------------------------------------------------------------------
    def head(self, status: int, headers):
        self.status, self.headers, self.head_done = status, headers, True
        self.until_eof = "content-length" not in headers and "chunked" not in headers.get("transfer-encoding", "")
        encoding = headers.get("content-encoding")
        if encoding is not None:
            encoding = encoding.strip().lower()
            if encoding in ENCODINGS:
                self.inflater = Inflater(encoding)
            elif encoding not in ("", "identity"):
                raise DecodingError(f"the upstream answered in an encoding the gateway does not read ({encoding})")
        if self.cap is not None:
            self.check_cap()
        self._wake()

    def end(self, keep_alive: bool):
        if self.cap is not None and self.buffer.total > self.cap:  # what the last read brought
            raise ResponseTooLarge(f"the upstream's body is over UPSTREAM_MAX_BODY_BYTES ({self.cap})")
        self.complete = True
        if self.backlog:  # more was read than the answer held: the connection cannot be trusted with another
            keep_alive = False
        self.stop_timer()
        self.release_slot()
        self.conn.finished(self, keep_alive)
        self._wake()

    # -- from the connection ----------------------------------------------------------------------
    def feed(self, data: bytes):
        self.received = True
        self.last_data = self.loop.time()  # the read timeout starts again
        if self.backlog is not None:
            self.backlog += data
        elif len(data) <= PARSE_SLICE:
            self._parse(data)
        else:
            self.backlog = bytearray(data)
            self.conn.pause_reading(BACKLOG)
            self._drain()

    def _parse(self, data):
        try:
            self.conn.parser.feed(data)
        except HTTPError as error:
            self._refused(error)
            return
        if self.buffer.size and not self.complete and self.error is None:
            self._arrived()

    def _arrived(self):
        """Body bytes came with this read (the parser put them in the buffer): the bounds, and the reader."""
        buffer = self.buffer
        cap = self.cap
        if cap is None:
            if buffer.size > STREAM_HIGH_WATER:  # a stream nobody reads: stop reading the socket
                self.conn.pause_reading(UNREAD)
            if self.waiter is not None:
                self._wake()
        elif buffer.total > cap:
            self.fail(ResponseTooLarge(f"the upstream's body is over UPSTREAM_MAX_BODY_BYTES ({cap})"))
        elif self.inflater is not None and self.waiter is not None:
            self._wake()  # a compressed body is decompressed as it comes, not all at the end
        # a plain body read whole wakes its reader only at the end

    def _refused(self, error: HTTPError):
        if self.complete:
            self.conn.close()  # bytes after the answer: the connection cannot be trusted with another
        else:
            self.fail(error)

    def _drain(self):
        """Parse the next slice of what was read; the rest waits for the loop's next turn."""
        backlog = self.backlog
        if backlog is None:
            return
        if self.complete or self.error is not None:
            self.backlog = None
            if self.complete and backlog:
                self.conn.close()
            return
        if self.conn.paused & UNREAD:
            return  # the reader is behind: taking its bytes schedules this again
        piece = bytes(backlog[:PARSE_SLICE])
        del backlog[:PARSE_SLICE]
        if not backlog:
            self.backlog = None
            self.conn.resume_reading(BACKLOG)
        self._parse(piece)
        if self.backlog is not None:
            self.loop.call_soon(self._drain)
        elif self.lost_exc is not None:
            exc, self.lost_exc = self.lost_exc, None
            self.lost(exc[0])

    def lost(self, exc: Exception | None):
        if self.complete or self.error is not None:
            return
        if self.backlog is not None:
            self.lost_exc = (exc,)  # what was read before the connection went is parsed first
            return
        if self.head_done and self.until_eof and exc is None:
            try:
                self.end(False)  # a body that ends when the connection does
            except HTTPError as error:  # over the cap with its last bytes
                self.fail(error)
            return
        self.fail(RemoteProtocolError("the upstream closed the connection before the answer was complete"
                                      + (f" ({exc})" if exc else "")))

    def unsent(self) -> int:
        return self.conn.unsent()

    # -- the end, however it comes ----------------------------------------------------------------
    def fail(self, error: HTTPError):
        if self.complete or self.error is not None:
            return
        self.error = error
        self.stop_timer()
        self.backlog = None
        self.release_slot()
        self.conn.broken(self)
        self._wake()

    def abort(self):
        """Give up on this answer: the connection closes (its slot is freed with it)."""
        if not self.complete:
            self.fail(ReadError("the gateway stopped reading the upstream's answer"))

    def release_slot(self):
        if self.slot:
            self.slot = False
            self.slots.release()

    def _wake(self):
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- the reader's side ------------------------------------------------------------------------
    async def wait(self):
        waiter = self.waiter = self.loop.create_future()
        try:
            await waiter
        except asyncio.CancelledError:
            self.abort()  # the caller went away mid-answer: the connection's state is unknown
            raise

    def read_whole(self, cap: int):
        """The reader will take the whole body, up to `cap` bytes (decompressed, and as received)."""
        self.cap = cap
        if self.error is None and self.head_done:
            try:
                self.check_cap()
            except ResponseTooLarge as exc:
                self.fail(exc)
                raise
        self._resume_unread()

    def check_cap(self):
        headers, cap = self.headers, self.cap
        assert headers is not None and cap is not None  # called once both the head and the cap are here
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            raise ResponseTooLarge(f"the upstream's body of {declared} bytes is over UPSTREAM_MAX_BODY_BYTES")
        if self.buffer.total > cap:
            raise ResponseTooLarge(f"the upstream's body is over UPSTREAM_MAX_BODY_BYTES ({self.cap})")

    def take_all(self) -> bytes:
        """The plain body received (the reader checked there is no encoding)."""
        return self.buffer.take()

    def next_piece(self, limit: int) -> bytes:
        """The next at most `limit` bytes of the body, decompressed; b"" when none are here yet."""
        inflater = self.inflater
        if inflater is None:
            if not self.buffer.size:
                return b""
            data = self.buffer.take(limit)
            if self.conn.paused:
                self._resume_unread()
            return data
        while True:
            if inflater.pending:
                try:
                    out = inflater.inflate(limit)
                except DecodingError as error:
                    self.fail(error)
                    raise
                if out:
                    return out
            elif self.buffer.size:
                inflater.feed(self.buffer.take())
                self._resume_unread()
            else:
                return b""

    def _resume_unread(self):
        conn = self.conn
        if conn.paused & UNREAD and self.buffer.size <= STREAM_HIGH_WATER and not self.complete \
                and self.error is None:
            conn.resume_reading(UNREAD)
            self.touch()  # the socket was still because we stopped it, not the upstream
            if self.backlog is not None:
                self.loop.call_soon(self._drain)
