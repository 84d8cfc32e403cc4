"""One timer per upstream call for all its time bounds: the read timeout (since the last byte), the write
timeout (while the socket's buffer is full: since its bytes last moved) and the call's deadline.
It is rescheduled only when it fires, so a byte arriving costs a clock read, not a timer.

A base of the exchange (exchange.py) rather than an object of its own: the hot path makes one object a call,
not two. What it needs of its subclass: `loop`, `fail(error)` (called once, with the bound that ran out)
and `unsent()` (bytes written and not sent yet)."""

from django.conf import settings

from ..upstream_errors import DeadlineExceeded, ReadTimeout, WriteTimeout


class TimeBounds:
    __slots__ = ("_handle", "deadline_at", "deadline", "read_timeout", "last_data", "write_timeout",
                 "write_blocked_at", "unsent_then")

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
