"""Reading an answer's framing: httptools' response parser (llhttp, what uvicorn reads requests with) behind
the head bounds, every way it can fail a typed upstream error.

The head (status line and headers, informational answers before it included) is bounded *before* the
parser sees the bytes: at most MAX_HEAD_BYTES are fed until the head is complete, so a header line that
never ends costs 64 KiB, not what httptools would keep appending to (quadratically). The number of header
lines is capped too. A `101 Switching Protocols`, which no API call asks for, is an error, not an escaping
HttpParserUpgrade.
"""

import httptools

from ..upstream_errors import HTTPError, RemoteProtocolError
from .api import Headers
from .bounds import MAX_HEAD_BYTES, MAX_HEADERS


class AnswerParser:
    """Parses the answers on one connection, one at a time. `start(sink, body)` before each: the sink's `head`
    and `end`, and `body`, are called as the answer arrives. `feed` raises an HTTPError for anything the answer
    may not be; the connection is then unusable."""

    __slots__ = ("_parser", "_sink", "_body", "_head_left", "_raw_headers", "_head_done", "_done")

    def __init__(self):
        self._parser = httptools.HttpResponseParser(self)
        self._sink = self._body = None

    def start(self, sink, body):
        self._sink = sink
        self._body = body
        self._head_left = MAX_HEAD_BYTES
        self._raw_headers = []
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
        for name, value in self._raw_headers:
            key, text = name.decode("latin-1").lower(), value.decode("latin-1")
            previous = dict.get(headers, key)
            dict.__setitem__(headers, key, text if previous is None else f"{previous}, {text}")
        self._raw_headers = None
        self._head_done = True
        self._sink.head(status, headers)

    def on_body(self, data: bytes):
        self._body(data)

    def on_message_complete(self):
        if not self._head_done:
            return  # the end of an informational answer
        self._done = True
        self._sink.end(self._parser.should_keep_alive())


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
