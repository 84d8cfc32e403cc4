"""A hostile (or just broken) HTTP/1.1 upstream, one behaviour per path: `/mode/<name>`. It runs in a
process of its own (`python -m tests.hostile_upstream`, printing its port), so that what the client under
test costs — memory, event-loop time — is measured without the attacker's own.

The modes are the upstream behaviours of issue #18 (what froze a worker or took gigabytes) and the framing
cases that already held; tests/integration/test_hostile_upstream.py asserts, for each, what the gateway's
client makes of it, the memory it took and how long the event loop was held meanwhile.
"""

import asyncio
import gzip
import sys
import zlib

MIB = 1024 * 1024
# Sizes the tests rely on (they set the caps below these).
HUGE_HEADER_BYTES = 64 * MIB  # one header line that never ends
DRIP_BODY_BYTES = 6 * MIB  # a body in 1-byte chunks
BLANK_SSE_BYTES = 32 * MIB  # compressed blank lines in a stream, then one event
BOMB_BYTES = 256 * MIB  # what the gzip bomb expands to
EMPTY_HEADERS = 65_000
EXACT = b'{"id": "exact", "object": "chat.completion"}'
LAST_EVENT = b'data: {"ok": true}\n\n'

_cache: dict[str, bytes] = {}


def _gzip_of(block: bytes, times: int, tail: bytes = b"") -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [compressor.compress(block) for _ in range(times)]
    parts.append(compressor.compress(tail))
    parts.append(compressor.flush())
    return b"".join(parts)


def bomb() -> bytes:
    if "bomb" not in _cache:
        _cache["bomb"] = _gzip_of(b"\0" * MIB, BOMB_BYTES // MIB)
    return _cache["bomb"]


def blank_sse() -> bytes:
    if "blank" not in _cache:
        _cache["blank"] = _gzip_of(b"\n" * MIB, BLANK_SSE_BYTES // MIB, LAST_EVENT)
    return _cache["blank"]


def chunked(data: bytes, size: int = 16 * 1024) -> list[bytes]:
    return [b"%x\r\n" % len(data[i:i + size]) + data[i:i + size] + b"\r\n" for i in range(0, len(data), size)] + [
        b"0\r\n\r\n"]


SSE_GZIP_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-encoding: gzip\r\n"
                 b"transfer-encoding: chunked\r\n\r\n")


async def huge_header(writer):
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-big: ")
    block = b"a" * MIB
    for _ in range(HUGE_HEADER_BYTES // MIB):
        writer.write(block)
        await writer.drain()


async def drip_body(writer):
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n")
    block = b"1\r\nx\r\n" * (256 * 1024)
    for _ in range(DRIP_BODY_BYTES // (256 * 1024)):
        writer.write(block)
        await writer.drain()
    writer.write(b"0\r\n\r\n")


async def gzip_blank_sse(writer):
    writer.write(SSE_GZIP_HEAD)
    for piece in chunked(blank_sse()):
        writer.write(piece)
        await writer.drain()


async def gzip_bomb(writer):
    data = bomb()
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\n"
                 b"content-length: %d\r\n\r\n" % len(data))
    writer.write(data)


async def gzip_bomb_stream(writer):
    writer.write(SSE_GZIP_HEAD)
    for piece in chunked(bomb(), 64 * 1024):
        writer.write(piece)
        await writer.drain()


async def switching_protocols(writer):
    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n"
                 b"\x81\x05hello")


async def many_empty_headers(writer):
    writer.write(b"HTTP/1.1 200 OK\r\n" + b"a:\r\n" * EMPTY_HEADERS + b"content-length: %d\r\n\r\n" % len(EXACT)
                 + EXACT)


async def exact(writer):
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(EXACT)
                 + EXACT)


async def exact_gzip(writer):
    data = gzip.compress(EXACT)
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n" % len(data) + data)


async def informational(writer):
    writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n")
    await exact(writer)


async def close_delimited(writer):
    writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n" + EXACT)
    await writer.drain()
    writer.close()


async def cl_and_te(writer):
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")


async def bad_chunk_size(writer):
    writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")


async def invalid_http(writer):
    writer.write(b"SMTP/1.0 220 hello there\r\n\r\n")


async def truncated(writer):
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n" + EXACT)
    await writer.drain()
    writer.transport.abort()


async def corrupt_gzip(writer):
    data = b"\x1f\x8b\x08\x00" + b"not gzip at all" * 10
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n" % len(data) + data)


async def drip(writer):
    """A byte every 50 ms, for ever: only the deadline ends it."""
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
    for _ in range(2000):
        writer.write(b"1\r\n\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)


MODES = {fn.__name__: fn for fn in (
    huge_header, drip_body, gzip_blank_sse, gzip_bomb, gzip_bomb_stream, switching_protocols, many_empty_headers,
    exact, exact_gzip, informational, close_delimited, cl_and_te, bad_chunk_size, invalid_http, truncated,
    corrupt_gzip, drip)}


async def handle(reader, writer):
    """One connection: a mode per request, for as long as the client keeps it (kept-alive calls reuse it)."""
    try:
        while not writer.is_closing():
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            path = head.split(b" ", 2)[1].decode()
            name = path.rsplit("/", 1)[-1].split("?")[0]
            await MODES[name](writer)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.transport.abort()


async def main():
    bomb(), blank_sse()  # built before the port is announced: no test waits on them
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
