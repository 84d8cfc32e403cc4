"""One timer per upstream call for all its time bounds: the read timeout (since the last byte), the write
timeout (while the socket's buffer is full: since its bytes last moved) and the call's deadline.
It is rescheduled only when it fires, so a byte arriving costs a clock read, not a timer."""

from ..upstream_errors import DeadlineExceeded, ReadTimeout, WriteTimeout


class CallTimer:
    __slots__ = ("_loop", "_handle", "_expire", "_write_left", "deadline_at", "deadline", "read_timeout",
                 "write_timeout", "last_data", "write_blocked_at", "unsent")

    def __init__(self, loop, expire, write_left, deadline_at: float, deadline: float, read_timeout: float,
                 write_timeout: float):
        """`expire(error)` is called once, with the bound that ran out; `write_left()` is the number of bytes
        written and not sent yet."""
        self._loop = loop
        self._expire = expire
        self._write_left = write_left
        self.unsent = 0
        self.deadline_at, self.deadline = deadline_at, deadline
        self.read_timeout, self.write_timeout = read_timeout, write_timeout
        now = loop.time()
        self.last_data = now
        self.write_blocked_at = None
        self._handle = loop.call_at(min(deadline_at, now + read_timeout), self._fire)

    def touch(self):
        """Bytes arrived (or the reader let more arrive): the read timeout starts again."""
        self.last_data = self._loop.time()

    def write_blocked(self):
        now = self._loop.time()
        self.write_blocked_at = now
        self.unsent = self._write_left()
        handle = self._handle
        if handle is not None and handle.when() > now + self.write_timeout:
            handle.cancel()
            self._handle = self._loop.call_at(now + self.write_timeout, self._fire)

    def write_unblocked(self):
        self.write_blocked_at = None

    def cancel(self):
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._expire = self._write_left = None

    def _fire(self):
        if self._handle is None:
            return
        now = self._loop.time()
        if now >= self.deadline_at:
            error = DeadlineExceeded(f"the upstream call took longer than its overall time budget "
                                     f"({self.deadline:g} s)")
        elif self.write_blocked_at is not None and now - self.write_blocked_at >= self.write_timeout \
                and self._write_left() >= self.unsent:
            error = WriteTimeout(f"the upstream took none of the request for {self.write_timeout:g} s")
        elif now - self.last_data >= self.read_timeout:
            error = ReadTimeout(f"the upstream sent nothing for {self.read_timeout:g} s")
        else:
            if self.write_blocked_at is not None and now - self.write_blocked_at >= self.write_timeout:
                self.write_blocked_at, self.unsent = now, self._write_left()  # it moved: a new window
            when = min(self.deadline_at, self.last_data + self.read_timeout)
            if self.write_blocked_at is not None:
                when = min(when, self.write_blocked_at + self.write_timeout)
            self._handle = self._loop.call_at(when, self._fire)
            return
        expire = self._expire
        self.cancel()
        expire(error)
