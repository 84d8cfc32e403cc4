"""The few ASGI primitives the /v1 hot path needs, kept free of Django's request machinery
(every piece of which costs a thread hop; see the README's design notes)."""

import itertools
import os
import time
from collections.abc import AsyncIterator, Iterator, Sequence

from .errors import GatewayError

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


_prefix: str
_counter: Iterator[int]


def _reseed() -> None:
    """A request id is this process's random 64-bit prefix and a counter: unique across processes and
    restarts like a uuid4, without reading the kernel's random source per request."""
    global _prefix, _counter
    _prefix, _counter = "req_" + os.urandom(8).hex(), itertools.count()


_reseed()
os.register_at_fork(after_in_child=_reseed)  # a forked worker must not repeat its parent's ids


def new_request_id() -> str:
    return f"{_prefix}{next(_counter):016x}"


class Request:
    """ASGI input and output only: what a call decides about itself lives on its pipeline.Call."""

    __slots__ = ("scope", "receive", "send", "method", "path", "headers", "request_id", "started",
                 "response_started", "extra_headers", "error_body")

    def __init__(self, scope, receive, send):
        self.scope = scope
        self.receive = receive
        self.send = send
        self.method = scope["method"]
        self.path = scope["path"]
        self.headers = dict(scope["headers"])  # lower-case names; a repeated header keeps its last value
        self.request_id = new_request_id()
        self.started = time.perf_counter()
        self.response_started = False
        # Sent with whatever answer this request gets (the rate-limit headers, the response cache's).
        self.extra_headers: Sequence[tuple[bytes, bytes]] = ()
        self.error_body = None  # (GatewayError, request id) -> bytes, for a protocol with its own error envelope

    def header(self, name: bytes) -> str | None:
        value = self.headers.get(name)
        return value.decode("latin-1") if value is not None else None

    async def read_body(self, limit: int) -> bytes:
        declared = self.headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_large(limit)
        chunks = []
        size = 0
        more = True
        while more:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            chunks.append(chunk)
            more = message.get("more_body", False)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def iter_body(self, limit: int) -> AsyncIterator[bytes]:
        """The body as it arrives, chunk by chunk (a 413 past `limit`): for a parser that reads as it goes."""
        declared = self.headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_large(limit)
        size = 0
        more = True
        while more:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            if chunk:
                yield chunk
            more = message.get("more_body", False)

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]):
        self.response_started = True
        await self.send({
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, *self.extra_headers, (b"x-request-id", self.request_id.encode())],
        })

    async def respond(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None,
                      content: list[tuple[bytes, bytes]] | None = None):
        """`content`: the content headers when the body is not JSON (a passthrough answer)."""
        # With its length, the answer goes out as it is (no chunked framing around it).
        await self.start(status, [*(headers or ()), *(JSON_HEADERS if content is None else content),
                                  (b"content-length", b"%d" % len(body))])
        await self.send({"type": "http.response.body", "body": body})

    async def respond_error(self, error: GatewayError):
        body = self.error_body(error, self.request_id) if self.error_body is not None else error.body()
        await self.respond(error.status, body, error.headers)

    async def write(self, data: bytes):
        await self.send({"type": "http.response.body", "body": data, "more_body": True})

    async def finish(self, data: bytes = b""):
        await self.send({"type": "http.response.body", "body": data})


class ClientDisconnected(Exception):
    """The client went away before the request was answered."""


def too_large(limit: int) -> GatewayError:
    return GatewayError(413, "invalid_request_error", f"Request body is larger than the limit of {limit} bytes.",
                        code="request_too_large")
