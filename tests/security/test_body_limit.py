"""#12 item 11: the Django side (management API, admin, unknown routes) answers 413 as a body streams in,
declared (Content-Length) or chunked, long before 50 MiB are read. Against a real server (uvicorn)."""

import asyncio
import select
import socket
import time
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from gomodel.body_limit import BodySizeLimit

pytestmark = [pytest.mark.e2e]

FIFTY_MIB = 50 * 1024 * 1024
CHUNK = 64 * 1024
PATHS = ["/api/v1/tenants/", "/admin/login/", "/no/such/route/"]


def connect(gateway):
    parts = urlsplit(gateway)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    return sock


def response_head(sock) -> bytes:
    data = b""
    sock.settimeout(10)
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            break
        data += piece
    return data


def upload(gateway, path, chunked: bool) -> tuple[bytes, int, float]:
    """POST 50 MiB (declared or chunked), stopping as soon as the server answers: (answer, bytes sent, s)."""
    sock = connect(gateway)
    head = f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {FIFTY_MIB}\r\n\r\n"
    started = time.monotonic()
    sock.sendall(head.encode())
    sent = 0
    block = b"a" * CHUNK
    frame = f"{CHUNK:x}\r\n".encode() + block + b"\r\n" if chunked else block
    try:
        while sent < FIFTY_MIB:  # bounded: at most 50 MiB
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            sock.sendall(frame)
            sent += CHUNK
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed while we were still sending
    answer = response_head(sock)
    elapsed = time.monotonic() - started
    sock.close()
    return answer, sent, elapsed


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_50_mib_upload_is_refused_early(gateway, path, chunked):
    answer, sent, elapsed = upload(gateway, path, chunked)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"DJANGO_BODY_SIZE_LIMIT" in answer or b"content-length" in answer.lower()
    assert sent < 20 * 1024 * 1024, f"{sent} bytes were sent before the answer"
    assert elapsed < 5.0


def test_a_declared_length_over_the_limit_is_refused_before_any_byte(gateway):
    sock = connect(gateway)
    sock.sendall(f"POST /admin/login/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: {FIFTY_MIB}\r\n\r\n".encode())
    answer = response_head(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_a_body_under_the_limit_reaches_django(gateway):
    sock = connect(gateway)
    body = b'{"slug": "' + b"x" * 1000 + b'"}'
    sock.sendall(f"POST /api/v1/tenants/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    answer = response_head(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]  # Django answered: no credentials


def test_the_default_limit_is_set():
    assert 0 < settings.DJANGO_BODY_SIZE_LIMIT < FIFTY_MIB


def test_the_limit_counts_the_bytes_that_stream_in():
    """Unit: the wrapper answers 413 once received bytes exceed the limit and never lets the app answer too."""
    sent, reads = [], []

    async def app(scope, receive, send):
        while True:
            message = await receive()
            reads.append(message["type"])
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 404, "headers": []})

    chunks = iter([{"type": "http.request", "body": b"x" * 6, "more_body": True}] * 10)

    async def receive():
        return next(chunks)

    async def send(message):
        sent.append(message)

    asyncio.run(BodySizeLimit(app, 10)({"type": "http", "headers": []}, receive, send))
    assert sent[0]["status"] == 413 and len(sent) == 2
    assert reads == ["http.request", "http.disconnect"]
