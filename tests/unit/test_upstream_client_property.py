"""The upstream client's parsing under arbitrary split points, chunk framings, header sets and malformed
answers (hypothesis): every answer ends as the exact body (and headers) or a typed upstream error — never a
hang, never another exception. The bytes are handed to the client's connection directly, each piece one
`data_received`, so the splits are exactly the ones drawn (a socket would coalesce them)."""

import asyncio
import gzip

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from gomodel.gateway import upstream_errors
from gomodel.gateway.upstream_client import LoopClient
from gomodel.gateway.upstream_client.loop_client import Connection

RESERVED = {"content-length", "transfer-encoding", "content-encoding", "connection", "host", "keep-alive"}


class FakeTransport(asyncio.Transport):
    """Feeds `pieces` to the connection once the request is written; `close` at the end ends the stream."""

    def __init__(self, loop, conn: Connection, pieces: list[bytes], close: bool):
        super().__init__()
        self.loop, self.conn, self.pieces, self.close_at_end = loop, conn, pieces, close
        self.paused = False
        self.closed = False
        self.resumed = asyncio.Event()

    def write(self, data):
        asyncio.ensure_future(self._answer())

    async def _answer(self):
        for piece in self.pieces:
            while self.paused and not self.closed:
                self.resumed.clear()
                await self.resumed.wait()
            if self.closed:
                return
            self.conn.data_received(piece)
            await asyncio.sleep(0)
        if self.close_at_end and not self.closed:
            self.closed = True
            self.conn.connection_lost(None)

    def pause_reading(self):
        self.paused = True

    def resume_reading(self):
        self.paused = False
        self.resumed.set()

    def is_closing(self):
        return self.closed

    def abort(self):
        if not self.closed:
            self.closed = True
            self.resumed.set()
            self.loop.call_soon(self.conn.connection_lost, None)

    close = abort


def split(data: bytes, cuts: list[float]) -> list[bytes]:
    points = sorted({int(c * len(data)) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:]) if b > a]


header_names = st.from_regex(r"\Ax-[a-z0-9-]{1,20}\Z").filter(lambda n: n not in RESERVED)
header_values = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e), max_size=40)


@st.composite
def answers(draw):
    """(wire bytes, close at end, expected): expected is (body, headers) or an upstream error class."""
    # small bodies, and large ones (up to ~250 KB: parsed in slices, handed out in slices, paused)
    body = draw(st.one_of(st.binary(max_size=3000), st.builds(lambda pattern, times: pattern * times,
                                                              st.binary(min_size=1, max_size=50),
                                                              st.integers(1, 5000))))
    headers = draw(st.lists(st.tuples(header_names, header_values), max_size=30))
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    encoded = draw(st.booleans())
    flaw = draw(st.sampled_from([None, None, None, "bad_chunk", "truncated", "bad_status", "no_colon", "cl_te"]))
    wire_body = gzip.compress(body) if encoded else body
    head = [b"HTTP/1.1 200 OK\r\n" if flaw != "bad_status" else b"HTTP/1.1 2x0 OK\r\n"]
    head += [f"{name}: {value}\r\n".encode() for name, value in headers]
    if encoded:
        head.append(b"content-encoding: gzip\r\n")
    if flaw == "no_colon":
        head.append(b"this line has no colon\r\n")
    close = framing == "close"
    if framing == "length" or flaw == "cl_te":
        head.append(b"content-length: %d\r\n" % len(wire_body))
    if framing == "chunked" or flaw == "cl_te":
        head.append(b"transfer-encoding: chunked\r\n")
        sizes = draw(st.lists(st.integers(1, 700), max_size=20))
        chunks, at = [], 0
        for size in sizes:
            if at >= len(wire_body):
                break
            piece = wire_body[at:at + size]
            chunks.append(b"%x\r\n" % len(piece) + piece + b"\r\n")
            at += size
        if at < len(wire_body):
            piece = wire_body[at:]
            chunks.append(b"%x\r\n" % len(piece) + piece + b"\r\n")
        if flaw == "bad_chunk":
            chunks.insert(draw(st.integers(0, len(chunks))), b"zz\r\nxx\r\n")
        payload = b"".join(chunks) + b"0\r\n\r\n"
    elif framing == "close":
        head.append(b"connection: close\r\n")
        payload = wire_body
    else:
        payload = wire_body
    wire = b"".join(head) + b"\r\n" + payload
    if flaw == "truncated":
        if framing == "close":
            flaw = None  # a close-delimited body has no end to miss
        elif payload:
            wire = wire[:-max(1, len(payload) // 2)]
            close = True
        else:
            wire = wire[:-1]
            close = True
    if flaw == "bad_chunk" and framing != "chunked":
        flaw = None
    if flaw is None:
        expected_headers = {}
        for name, value in headers:
            previous = expected_headers.get(name)
            expected_headers[name] = value if previous is None else f"{previous}, {value}"
        return wire, close, (body, expected_headers)
    return wire, True, upstream_errors.HTTPError


async def exchange(wire: bytes, cuts: list[float], close: bool, stream: bool):
    client = LoopClient()
    loop = asyncio.get_running_loop()

    async def connect(loop, origin, deadline_at):
        conn = Connection(client._pool, origin, loop)
        conn.connection_made(FakeTransport(loop, conn, split(wire, cuts), close))
        return conn

    client._connect = connect
    async with asyncio.timeout(5):  # "never a hang"
        try:
            if not stream:
                response = await client.post("http://upstream.test/v1/x", content=b"{}")
                return response.content, response.headers
            response = await client.send(client.build_request("POST", "http://upstream.test/v1/x", content=b"{}"),
                                         stream=True)
            received = bytearray()
            try:
                async for piece in response.aiter_bytes():
                    received += piece
            finally:
                await response.aclose()
            return bytes(received), response.headers
        except upstream_errors.HTTPError as exc:
            return exc
        finally:
            await client.aclose()
            assert client.in_flight == 0  # whatever happened, the slot came back
    del loop


@pytest.mark.parametrize("stream", [False, True])
@hsettings(max_examples=150, deadline=None,
           suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(answer=answers(), cuts=st.lists(st.floats(0, 1), max_size=12))
def test_any_framing_at_any_split_is_the_exact_body_or_a_typed_error(settings, answer, cuts, stream):
    settings.UPSTREAM_TIMEOUT = 2
    wire, close, expected = answer
    outcome = asyncio.run(exchange(wire, cuts, close, stream))
    if isinstance(expected, tuple):
        body, headers = expected
        assert not isinstance(outcome, Exception), (outcome, wire[:300])
        content, got_headers = outcome
        assert content == body
        for name, value in headers.items():
            assert got_headers.get(name) == value
    else:
        assert isinstance(outcome, expected), (outcome, wire[:300])
