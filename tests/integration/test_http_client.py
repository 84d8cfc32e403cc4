"""gomodel.gateway.upstream_client: the upstream client (httpx API, HTTP/1.1 on the event loop; and
bench/transports.py's pyreqwest, aiohttp and httpx clients) over real loopback sockets. What kind of
error a failure becomes decides 502 vs 504, so each failure is produced for real."""

import asyncio
import socket

import pytest

from bench.transports import new_client as bench_client
from gomodel.gateway import upstream_client, upstream_errors
from gomodel.gateway.upstream_client import LoopClient, UpstreamClient


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def serve(handler):
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


KIND = {"kind": "httptools"}


def new_client():
    """The gateway's own client, or (bench only) one of the httpx clients it is compared with."""
    return upstream_client.new_client() if KIND["kind"] == "httptools" else bench_client(KIND["kind"])


@pytest.fixture(params=["httptools", "reqwest", "aiohttp", "httpx-aiohttp", "httpx"])
def transport(request, monkeypatch):
    monkeypatch.setitem(KIND, "kind", request.param)
    return request.param


def test_every_client_fulfils_the_upstream_client_protocol(transport):
    async def run():
        async with new_client() as client:
            return isinstance(client, UpstreamClient), type(client)

    fits, kind = asyncio.run(run())
    assert fits, kind
    assert (kind is LoopClient) is (transport == "httptools")


def test_refused_connection_is_a_connect_error_not_a_timeout(transport):
    async def run():
        async with new_client() as client:
            with pytest.raises(upstream_errors.HTTPError) as caught:
                await client.get(f"http://127.0.0.1:{closed_port()}/v1/models")
            return caught.value

    error = asyncio.run(run())
    assert isinstance(error, upstream_errors.ConnectError), type(error)
    assert not isinstance(error, upstream_errors.TimeoutException)


def test_silent_upstream_is_a_read_timeout(transport, settings):
    settings.UPSTREAM_TIMEOUT = 0.3

    async def run():
        async def never_answer(reader, writer):
            await reader.read(65536)
            await asyncio.sleep(5)

        server, port = await serve(never_answer)
        async with server, new_client() as client:
            with pytest.raises(upstream_errors.HTTPError) as caught:
                await client.post(f"http://127.0.0.1:{port}/v1/chat/completions", content=b"{}")
            return caught.value

    error = asyncio.run(run())
    assert isinstance(error, upstream_errors.TimeoutException), type(error)


def test_connection_dropped_mid_body_is_not_a_timeout(transport):
    async def run():
        async def half_a_stream(reader, writer):
            await reader.read(65536)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                         b"10\r\ndata: {\"a\": 1}\n\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.transport.abort()

        server, port = await serve(half_a_stream)
        received = b""
        async with server, new_client() as client:
            request = client.build_request("POST", f"http://127.0.0.1:{port}/v1/chat/completions", content=b"{}")
            response = await client.send(request, stream=True)
            assert response.status_code == 200
            with pytest.raises(upstream_errors.HTTPError) as caught:
                async for piece in response.aiter_bytes():
                    received += piece
            await response.aclose()
        return caught.value, received

    error, received = asyncio.run(run())
    assert received == b'data: {"a": 1}\n\n'
    assert not isinstance(error, upstream_errors.TimeoutException), type(error)


# -- the bounds on what an upstream may cost (the gateway's client) --------------------------------

def gateway_client():
    return upstream_client.new_client()


def test_a_body_over_the_cap_is_refused_whether_declared_or_chunked(settings):
    from gomodel.gateway.upstream_errors import ResponseTooLarge

    settings.UPSTREAM_MAX_BODY_BYTES = 1024 * 1024
    size = 3 * 1024 * 1024

    async def declared(reader, writer):
        await reader.read(65536)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size)
        await writer.drain()

    async def chunked(reader, writer):
        await reader.read(65536)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(size // 65536):
            writer.write(b"10000\r\n" + b"x" * 65536 + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")

    async def run(handler):
        server, port = await serve(handler)
        async with server, gateway_client() as client:
            with pytest.raises(upstream_errors.HTTPError) as caught:
                await client.post(f"http://127.0.0.1:{port}/v1/chat/completions", content=b"{}")
            return caught.value

    for handler in (declared, chunked):
        assert isinstance(asyncio.run(run(handler)), ResponseTooLarge)

    async def under_the_cap():
        server, port = await serve(chunked)
        async with server, gateway_client() as client:
            return await client.post(f"http://127.0.0.1:{port}/v1/chat/completions", content=b"{}")

    settings.UPSTREAM_MAX_BODY_BYTES = size
    assert len(asyncio.run(under_the_cap()).content) == size


def test_a_trickling_upstream_meets_the_deadline(settings):
    """Each byte comes before UPSTREAM_TIMEOUT, so only the overall deadline ends it (stream or not)."""
    from gomodel.gateway.upstream_errors import DeadlineExceeded

    settings.UPSTREAM_DEADLINE = 0.6

    async def trickle(reader, writer):
        await reader.read(65536)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(100):  # 10 s at most
            writer.write(b"3\r\n:\n\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.1)

    async def run(stream):
        server, port = await serve(trickle)
        started = asyncio.get_running_loop().time()
        async with server, gateway_client() as client:
            with pytest.raises(upstream_errors.HTTPError) as caught:
                request = client.build_request("POST", f"http://127.0.0.1:{port}/v1/chat/completions", content=b"{}")
                response = await client.send(request, stream=stream)
                try:
                    async for _ in response.aiter_bytes():
                        pass
                finally:
                    await response.aclose()
            return caught.value, asyncio.get_running_loop().time() - started

    for stream in (True, False):
        error, elapsed = asyncio.run(run(stream))
        assert isinstance(error, DeadlineExceeded), (stream, type(error))
        assert 0.5 < elapsed < 2.0


def test_waiting_for_a_pooled_connection_is_bounded(settings):
    settings.UPSTREAM_MAX_CONNECTIONS = 1
    settings.UPSTREAM_POOL_TIMEOUT = 0.4
    settings.UPSTREAM_CONNECT_TIMEOUT = 0.4

    async def hold(reader, writer):
        await reader.read(65536)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\nx\r\n")
        await writer.drain()
        await asyncio.sleep(5)

    async def run():
        server, port = await serve(hold)
        async with server, gateway_client() as client:
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            first = await client.send(client.build_request("POST", url, content=b"{}"), stream=True)  # holds it
            started = asyncio.get_running_loop().time()
            with pytest.raises(upstream_errors.HTTPError) as caught:
                await client.post(url, content=b"{}")
            elapsed = asyncio.get_running_loop().time() - started
            await first.aclose()
            return caught.value, elapsed

    error, elapsed = asyncio.run(run())
    assert isinstance(error, upstream_errors.PoolTimeout), type(error)
    assert 0.3 < elapsed < 2.0  # the pool's budget (UPSTREAM_POOL_TIMEOUT), not forever
