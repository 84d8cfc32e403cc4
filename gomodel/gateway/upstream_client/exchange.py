"""One request's answer on one connection, between the parser (which calls `head` and `end`, and puts the
body in `buffer`: each read's body is then checked against the bounds at once), the connection (`feed`,
`lost`, `write_blocked`/`write_unblocked`), the call's timer (timers.py, its base, which calls `fail`) and
the reader (gomodel/gateway/upstream_client/loop_client.py's Response: `wait`, `next_piece`, `take_all`).

No read holds the event loop for long: a read larger than PARSE_SLICE is parsed a slice per loop turn (the
socket paused meanwhile), and the body is decompressed by the reader a slice at a time. A stream nobody
reads stops the socket above STREAM_HIGH_WATER."""

import asyncio

from ..upstream_errors import DecodingError, HTTPError, ReadError, RemoteProtocolError, ResponseTooLarge
from .body import ENCODINGS, BodyBuffer, Inflater
from .bounds import PARSE_SLICE, STREAM_HIGH_WATER
from .timers import TimeBounds

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
        self.headers = None
        self.head_done = self.complete = self.received = self.until_eof = False
        self.error = None
        self.waiter = None
        self.buffer = BodyBuffer()
        self.inflater = None
        self.cap = None  # the body's byte limit, once someone reads it whole
        self.backlog = None  # bytes read from the socket and not parsed yet
        self.lost_exc = None
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
            try:
                self.conn.parser.feed(data)
            except HTTPError as error:
                self._refused(error)
                return
            if self.buffer.size and not self.complete and self.error is None:
                self._arrived()
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
        declared = self.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.cap:
            raise ResponseTooLarge(f"the upstream's body of {declared} bytes is over UPSTREAM_MAX_BODY_BYTES")
        if self.buffer.total > self.cap:
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
