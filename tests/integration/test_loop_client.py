"""The gateway's own upstream client (gomodel/gateway/upstream_client/: HTTP/1.1 on the event loop) against
real loopback servers: connection reuse, what an upstream may do to a pooled connection, encodings,
flow control and its slots. (Failure kinds and bounds: tests/integration/test_http_client.py.)"""

import asyncio
import gzip
import zlib

import pytest

from gomodel.gateway import upstream_client, upstream_errors
from gomodel.gateway.upstream_client import LoopClient

HANG = object()
OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


async def read_request(reader) -> bytes:
    """One request's head and body (by its content-length); b"" when the client closed."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + (await reader.readexactly(length) if length else b"")


class Upstream:
    """A loopback server answering each request with `answer(request, n)`: bytes, a list of pieces
    written one by one, None to hang up, HANG never to answer."""

    def __init__(self, answer):
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []

    async def __aenter__(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1/chat/completions"
        return self

    async def __aexit__(self, *exc):
        self.server.close()

    async def handle(self, reader, writer):
        self.connections += 1
        try:
            while True:
                try:
                    request = await read_request(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.requests.append(request)
                answer = self.answer(request, len(self.requests))
                if answer is None:
                    writer.transport.abort()
                    return
                if answer is HANG:
                    await asyncio.sleep(30)
                    return
                for piece in answer if isinstance(answer, list) else [answer]:
                    writer.write(piece)
                    await writer.drain()
                if b"connection: close" in (answer[-1] if isinstance(answer, list) else answer).lower():
                    writer.close()
                    return
        finally:
            writer.close()


def run(coro):
    return asyncio.run(coro)


def test_sequential_calls_share_one_kept_alive_connection():
    async def go():
        async with Upstream(lambda r, n: OK) as up, LoopClient() as client:
            for _ in range(5):
                response = await client.post(up.url, headers={"authorization": "Bearer k"}, content=b'{"a":1}')
                assert (response.status_code, response.content) == (200, b"{}")
            return up.connections, up.requests

    connections, requests = run(go())
    assert connections == 1
    head, _, body = requests[0].partition(b"\r\n\r\n")
    assert body == b'{"a":1}'
    assert b"\r\nauthorization: Bearer k\r\n" in head and head.endswith(b"\r\ncontent-length: 7")
    assert head.startswith(b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:")


def test_an_upstream_that_closed_a_pooled_connection_is_retried_on_a_new_one():
    """The upstream drops the idle connection after each answer (as servers do past their keep-alive):
    the next call finds it dead before any byte came back and goes again on a fresh connection."""
    async def go():
        def answer(request, n):
            return None if n == 2 else OK  # the 2nd request arrives on the connection it then drops

        async with Upstream(answer) as up, LoopClient() as client:
            first = await client.post(up.url, content=b"{}")
            second = await client.post(up.url, content=b"{}")
            return first.status_code, second.status_code, up.connections, len(up.requests)

    assert run(go()) == (200, 200, 2, 3)


def test_a_fresh_connection_that_breaks_is_an_error_not_a_retry():
    async def go():
        async with Upstream(lambda r, n: None) as up, LoopClient() as client:
            with pytest.raises(upstream_errors.RemoteProtocolError):
                await client.post(up.url, content=b"{}")
            return len(up.requests)

    assert run(go()) == 1  # a call that may have reached the provider is not sent twice by the client


def test_connection_close_and_a_body_that_ends_with_the_connection():
    async def go():
        answer = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it"
        async with Upstream(lambda r, n: answer) as up, LoopClient() as client:
            bodies = [(await client.get(up.url)).content for _ in range(2)]
            return bodies, up.connections

    bodies, connections = run(go())
    assert bodies == [b"all of it"] * 2
    assert connections == 2


def test_gzip_and_deflate_bodies_are_decoded_and_asked_for():
    payload = b'{"choices": []}' * 50

    async def go(encoding, data):
        answer = (b"HTTP/1.1 200 OK\r\ncontent-encoding: " + encoding + b"\r\ncontent-length: %d\r\n\r\n" % len(data)
                  + data)
        async with Upstream(lambda r, n: answer) as up, LoopClient() as client:
            response = await client.post(up.url, content=b"{}")
            return response.content, up.requests[0]

    for encoding, data in ((b"gzip", gzip.compress(payload)), (b"deflate", zlib.compress(payload))):
        body, request = run(go(encoding, data))
        assert body == payload
        assert b"accept-encoding: gzip, deflate\r\n" in request


def test_an_unknown_content_encoding_is_an_error():
    async def go():
        answer = b"HTTP/1.1 200 OK\r\ncontent-encoding: br\r\ncontent-length: 2\r\n\r\nxx"
        async with Upstream(lambda r, n: answer) as up, LoopClient() as client:
            with pytest.raises(upstream_errors.DecodingError):
                await client.post(up.url, content=b"{}")

    run(go())


def test_informational_answers_are_skipped():
    async def go():
        answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n" + OK
        async with Upstream(lambda r, n: answer) as up, LoopClient() as client:
            response = await client.post(up.url, content=b"{}")
            return response.status_code, response.content, "link" in response.headers

    assert run(go()) == (200, b"{}", False)


def test_headers_are_case_insensitive_and_repeats_are_joined():
    async def go():
        answer = b"HTTP/1.1 429 Too Many\r\nRetry-After: 3\r\nX-A: 1\r\nx-a: 2\r\ncontent-length: 0\r\n\r\n"
        async with Upstream(lambda r, n: answer) as up, LoopClient() as client:
            response = await client.post(up.url, content=b"{}")
            return response.status_code, response.headers.get("retry-after"), response.headers["X-a"]

    assert run(go()) == (429, "3", "1, 2")


def test_a_header_with_a_line_break_is_refused_before_sending():
    async def go():
        async with Upstream(lambda r, n: OK) as up, LoopClient() as client:
            with pytest.raises(upstream_errors.LocalProtocolError):
                await client.post(up.url, headers={"x-evil": "a\r\nx-injected: 1"}, content=b"{}")
            return len(up.requests)

    assert run(go()) == 0


@pytest.mark.parametrize("url", ["ftp://example.com/x", "http:///nohost", "http://h:99999/x"])
def test_urls_it_cannot_call_are_unsupported_protocol(url):
    async def go():
        async with LoopClient() as client:
            with pytest.raises(upstream_errors.UnsupportedProtocol):
                await client.get(url)

    run(go())


def test_a_large_stream_read_slowly_is_paused_then_delivered_whole():
    chunk = b"data: " + b"x" * 65530 + b"\n\n"  # 64 KiB events, 40 of them: far above the high-water mark

    async def go():
        head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        pieces = [head] + [b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(40)] + [b"0\r\n\r\n"]
        async with Upstream(lambda r, n: pieces) as up, LoopClient() as client:
            response = await client.send(client.build_request("POST", up.url, content=b"{}"), stream=True)
            await asyncio.sleep(0.3)  # the upstream writes while nobody reads
            peak = response._exchange.buffered
            received = 0
            async for data in response.aiter_bytes():
                received += len(data)
                await asyncio.sleep(0.001)
            await response.aclose()
            again = await client.post(up.url, content=b"{}")  # the connection went back to the pool usable
            return peak, received, again.status_code, up.connections

    peak, received, status, connections = run(go())
    assert peak < 40 * len(chunk) // 2  # reading stopped well before the whole stream was buffered
    assert received == 40 * len(chunk)
    assert (status, connections) == (200, 1)


def test_a_stream_closed_early_frees_its_slot_and_drops_its_connection(settings):
    settings.UPSTREAM_MAX_CONNECTIONS = 1
    settings.UPSTREAM_POOL_TIMEOUT = 0.5

    async def go():
        head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n"

        async with Upstream(lambda r, n: head if n == 1 else OK) as up, LoopClient() as client:
            response = await client.send(client.build_request("POST", up.url, content=b"{}"), stream=True)
            async for data in response.aiter_bytes():
                assert data == b"hello"
                break
            await response.aclose()
            after = await client.post(up.url, content=b"{}")
            return after.status_code, up.connections

    assert run(go()) == (200, 2)


def test_a_cancelled_call_frees_its_slot(settings):
    settings.UPSTREAM_MAX_CONNECTIONS = 1
    settings.UPSTREAM_POOL_TIMEOUT = 0.5

    async def go():
        async with Upstream(lambda r, n: HANG if n == 1 else OK) as up, LoopClient() as client:
            task = asyncio.ensure_future(client.post(up.url, content=b"{}"))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return (await client.post(up.url, content=b"{}")).status_code

    assert run(go()) == 200


def test_calls_in_flight_never_exceed_the_limit(settings):
    settings.UPSTREAM_MAX_CONNECTIONS = 3
    settings.UPSTREAM_POOL_TIMEOUT = 5

    async def go():
        async with Upstream(lambda r, n: OK) as up, LoopClient() as client:
            peak = 0

            async def one():
                nonlocal peak
                response = await client.post(up.url, content=b"{}")
                peak = max(peak, client.in_flight)
                return response.status_code

            statuses = await asyncio.gather(*(one() for _ in range(30)))
            return statuses, up.connections, client.in_flight

    statuses, connections, active = run(go())
    assert statuses == [200] * 30
    assert connections <= 3
    assert active == 0


def test_the_gateway_uses_this_client():
    assert isinstance(upstream_client.new_client(), LoopClient)


def _self_signed(tmp_path):
    """A certificate for localhost/127.0.0.1 and its key, as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_https_upstreams_are_verified(tmp_path, monkeypatch):
    """Providers are all https: the certificate must chain to a trusted CA and name the host."""
    import ssl

    cert_file, key_file = _self_signed(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert_file, key_file)

    async def go():
        async def handle(reader, writer):
            try:
                await read_request(reader)
                writer.write(OK)
                await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_tls)
        port = server.sockets[0].getsockname()[1]
        async with server:
            async with LoopClient() as client:  # CAs read now: the test's CA is trusted
                ok = await client.post(f"https://localhost:{port}/v1/chat/completions", content=b"{}")
            monkeypatch.delenv("SSL_CERT_FILE")
            async with LoopClient() as client:  # the system's CAs and certifi's do not know it
                with pytest.raises(upstream_errors.ConnectError) as caught:
                    await client.post(f"https://localhost:{port}/v1/chat/completions", content=b"{}")
            return ok.status_code, ok.content, str(caught.value)

    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    status, body, error = run(go())
    assert (status, body) == (200, b"{}")
    assert "CERTIFICATE_VERIFY_FAILED" in error


def test_bytes_after_an_answer_retire_the_connection():
    async def go():
        async with Upstream(lambda r, n: OK + OK if n == 1 else OK) as up, LoopClient() as client:
            first = await client.post(up.url, content=b"{}")
            second = await client.post(up.url, content=b"{}")  # not on the connection that misbehaved
            return first.content, second.content, up.connections

    assert run(go()) == (b"{}", b"{}", 2)


def test_a_body_is_capped_on_what_it_expands_to_even_when_it_comes_with_the_head(settings):
    settings.UPSTREAM_MAX_BODY_BYTES = 1000
    payload = gzip.compress(b"x" * 5000)  # 5,000 bytes once decoded, far fewer on the wire

    async def go(answer):
        async with Upstream(lambda r, n: answer) as up, LoopClient() as client:
            with pytest.raises(upstream_errors.ResponseTooLarge):
                await client.post(up.url, content=b"{}")

    sized = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n" % len(payload) + payload
    until_close = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\nconnection: close\r\n\r\n" + payload
    plain = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n" + b"x" * 5000  # all of it in the head's read
    for answer in (sized, until_close, plain):
        run(go(answer))


# -- the branches issue #17 found untested -----------------------------------------------------------

def test_a_head_over_the_cap_across_many_lines_is_refused():
    from gomodel.gateway.upstream_client import MAX_HEAD_BYTES

    async def go():
        lines = b"".join(b"x-h%d: %s\r\n" % (i, b"v" * 1000) for i in range(MAX_HEAD_BYTES // 1000 + 2))
        answer = b"HTTP/1.1 200 OK\r\n" + lines + b"content-length: 2\r\n\r\n{}"
        async with Upstream(lambda r, n: answer) as up, LoopClient() as client:
            with pytest.raises(upstream_errors.RemoteProtocolError, match="larger than"):
                await client.post(up.url, content=b"{}")

    run(go())


def test_more_header_lines_than_the_cap_are_refused():
    from gomodel.gateway.upstream_client import MAX_HEADERS

    async def go(count):
        answer = b"HTTP/1.1 200 OK\r\n" + b"a: b\r\n" * count + b"content-length: 2\r\n\r\n{}"
        async with Upstream(lambda r, n: answer) as up, LoopClient() as client:
            return (await client.post(up.url, content=b"{}")).headers["a"].count("b")

    assert run(go(MAX_HEADERS - 1)) == MAX_HEADERS - 1
    with pytest.raises(upstream_errors.RemoteProtocolError, match="more than"):
        run(go(MAX_HEADERS + 1))


def test_a_corrupt_gzip_stream_is_a_decoding_error_after_what_was_good():
    good = gzip.compress(b"data: 1\n\n")[:-8]  # the data, without gzip's trailer...
    answer = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-encoding: gzip\r\n"
              b"transfer-encoding: chunked\r\n\r\n" + b"%x\r\n" % (len(good) + 6) + good + b"\xff" * 6 + b"\r\n")

    async def go():
        async with Upstream(lambda r, n: [answer, b"0\r\n\r\n"]) as up, LoopClient() as client:
            response = await client.send(client.build_request("POST", up.url, content=b"{}"), stream=True)
            received = b""
            with pytest.raises(upstream_errors.DecodingError):
                async for piece in response.aiter_bytes():
                    received += piece
            await response.aclose()
            return received

    assert run(go()) in (b"", b"data: 1\n\n")  # zlib may or may not have let the good part out first


def test_bytes_between_answers_retire_an_idle_connection():
    async def go():
        async def handle(reader, writer):
            await read_request(reader)
            writer.write(OK)
            await asyncio.sleep(0.1)
            writer.write(b"HTTP/1.1 200 OK\r\n")  # on an idle connection: nobody asked
            await read_request(reader)  # never comes on this connection
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/x"
        async with server, LoopClient() as client:
            first = await client.post(url, content=b"{}")
            await asyncio.sleep(0.3)
            idle = client.idle_count(url)
            second = await client.post(url, content=b"{}")
            return first.status_code, idle, second.status_code

    first, idle_after_junk, second = run(go())
    assert (first, second) == (200, 200)
    assert idle_after_junk == 1  # still listed, but closed: the next call did not take it (it answered)


def test_a_slot_handed_over_just_as_its_waiter_gives_up_is_passed_on(settings):
    from gomodel.gateway.upstream_client.loop_client import Slots

    settings.UPSTREAM_MAX_CONNECTIONS = 1
    settings.UPSTREAM_POOL_TIMEOUT = 5

    async def go():
        loop = asyncio.get_running_loop()
        slots = Slots()
        await slots.acquire(loop)
        waiting = asyncio.ensure_future(slots.acquire(loop))
        await asyncio.sleep(0.01)
        slots.release()  # handed to the waiter...
        waiting.cancel()  # ...which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await waiting
        after_race = slots.in_use
        await asyncio.wait_for(slots.acquire(loop), 0.5)  # the slot was not lost
        return after_race, slots.in_use

    assert run(go()) == (0, 1)


def test_the_idle_pool_keeps_at_most_its_cap_per_origin(monkeypatch):
    from gomodel.gateway.upstream_client import loop_client

    monkeypatch.setattr(loop_client, "MAX_IDLE_PER_ORIGIN", 2)

    async def go():
        async def slow(reader, writer):
            while True:
                try:
                    await read_request(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                await asyncio.sleep(0.1)
                writer.write(OK)
        server = await asyncio.start_server(slow, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/x"
        async with server, LoopClient() as client:
            statuses = await asyncio.gather(*(client.post(url, content=b"{}") for _ in range(6)))
            return [r.status_code for r in statuses], client.idle_count(url)

    statuses, idle = run(go())
    assert statuses == [200] * 6
    assert idle == 2


def _unanswered_port():
    """A listening socket whose backlog is full: a connect to it waits (its SYN is dropped)."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    filler = socket.create_connection(server.getsockname())
    return server, filler, server.getsockname()[1]


def test_a_connect_timeout_is_told_from_the_deadline(settings):
    server, filler, port = _unanswered_port()
    url = f"http://127.0.0.1:{port}/v1/x"

    async def go(timeout):
        async with LoopClient() as client:
            with pytest.raises(upstream_errors.HTTPError) as caught:
                await client.post(url, content=b"{}", timeout=timeout)
            return caught.value

    try:
        settings.UPSTREAM_CONNECT_TIMEOUT = 0.3
        assert type(run(go(None))) is upstream_errors.ConnectTimeout  # 502, retried
        settings.UPSTREAM_CONNECT_TIMEOUT = 5
        assert type(run(go(0.3))) is upstream_errors.DeadlineExceeded  # the call's own budget ran out: 504
    finally:
        filler.close()
        server.close()


def test_a_request_the_upstream_never_takes_is_a_write_timeout(settings):
    import socket

    from gomodel.gateway.upstream import transport_error

    settings.UPSTREAM_WRITE_TIMEOUT = 0.3
    settings.UPSTREAM_TIMEOUT = 10

    async def go():
        async def never_read(reader, writer):
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            await asyncio.sleep(5)
        server = await asyncio.start_server(never_read, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/x"
        started = asyncio.get_running_loop().time()
        async with server, LoopClient() as client:
            with pytest.raises(upstream_errors.WriteTimeout) as caught:
                await client.post(url, content=b"x" * (32 * 1024 * 1024))
            return caught.value, asyncio.get_running_loop().time() - started, client.in_flight

    error, elapsed, in_flight = run(go())
    assert elapsed < 3 and in_flight == 0
    assert transport_error(type("T", (), {"name": "p"})(), error).status == 504


def test_a_request_the_upstream_takes_slowly_is_not_a_write_timeout(settings):
    """The write timeout is a stall, not a slow upload: each window in which some of it moved starts anew.
    (The kernel says a socket is writable again only once a good part of its send buffer is free: on a
    slow upstream, UPSTREAM_WRITE_TIMEOUT must be longer than draining that takes.)"""

    settings.UPSTREAM_WRITE_TIMEOUT = 0.4
    size = 24 * 1024 * 1024  # ~1.2 s at the ~20 MB/s the upstream reads

    async def go():
        async def slow_reader(reader, writer):
            head = await reader.readuntil(b"\r\n\r\n")
            left = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            while left:
                left -= len(await reader.read(min(left, 1024 * 1024)))
                await asyncio.sleep(0.05)
            writer.write(OK)
            await writer.drain()
        server = await asyncio.start_server(slow_reader, "127.0.0.1", 0, limit=1024 * 1024)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/x"
        started = asyncio.get_running_loop().time()
        async with server, LoopClient() as client:
            response = await client.post(url, content=b"x" * size)
            return response.status_code, asyncio.get_running_loop().time() - started

    status, elapsed = run(go())
    assert status == 200
    assert elapsed > 0.8  # longer than two write timeouts: it was slow, and it went through
