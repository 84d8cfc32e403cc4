"""A fast mock OpenAI-format upstream for the benchmark: raw asyncio protocol on uvloop + httptools.

It exists to cost as little CPU as possible, so that the gateway measurements are not skewed by the
fake provider sharing the same two cores. Answers, with pre-built bytes:

  POST /v1/chat/completions           -> a fixed chat.completion JSON with usage
  POST /v1/chat/completions (stream)  -> SSE: a role chunk, 8 content chunks, a finish chunk, a usage
                                         chunk and `data: [DONE]`, one chunked-encoding write per event
  GET  /v1/models                     -> a listing with MODEL

Usage: python bench/mock_upstream.py --port 9001   (prints "ready <port>" once listening)
"""

import argparse
import asyncio
import os
import signal
import socket
import sys

import httptools
import orjson
import uvloop

MODEL = "gpt-4o-mini"
CREATED = 1_700_000_000
PIECES = ["Hello", " from", " the", " bench", " mock", " upstream", ",", " hi!"]
USAGE = {"prompt_tokens": 12, "completion_tokens": len(PIECES), "total_tokens": 12 + len(PIECES),
         "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}}


def _response(status: bytes, content_type: bytes, body: bytes) -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: " + content_type + b"\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


COMPLETION = _response(b"200 OK", b"application/json", orjson.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": CREATED, "model": MODEL,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(PIECES)},
                 "finish_reason": "stop", "logprobs": None}],
    "usage": USAGE, "system_fingerprint": "fp_bench",
}))
MODELS = _response(b"200 OK", b"application/json", orjson.dumps(
    {"object": "list", "data": [{"id": MODEL, "object": "model", "created": CREATED, "owned_by": "bench"}]}))
TRACES_TAKEN = _response(b"200 OK", b"application/x-protobuf", b"")  # an empty ExportTraceServiceResponse
NOT_FOUND = _response(b"404 Not Found", b"application/json",
                      b'{"error":{"message":"no such route","type":"invalid_request_error"}}')

STREAM_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def _stream_events() -> list[bytes]:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": CREATED, "model": MODEL,
            "system_fingerprint": "fp_bench"}
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                    "finish_reason": None}]}]
    chunks += [{**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in PIECES]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    chunks.append({**base, "choices": [], "usage": USAGE})
    events = [b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]
    # HTTP/1.1 chunked framing, one chunk per SSE event, then the terminating zero-length chunk.
    framed = [b"%x\r\n%s\r\n" % (len(e), e) for e in events]
    framed[-1] += b"0\r\n\r\n"
    return framed


STREAM_EVENTS = _stream_events()


class MockProtocol(asyncio.Protocol):
    __slots__ = ("transport", "parser", "url", "body", "closing")

    def __init__(self):
        self.transport = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body = []
        self.closing = False

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def data_received(self, data):
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.write(_response(b"400 Bad Request", b"text/plain", b"bad request"))
            self.transport.close()

    # httptools callbacks
    def on_message_begin(self):
        self.url = b""
        self.body = []

    def on_url(self, url):
        self.url += url

    def on_body(self, body):
        self.body.append(body)

    def on_message_complete(self):
        method = self.parser.get_method()
        path = self.url.split(b"?", 1)[0].rstrip(b"/")
        write = self.transport.write
        if method == b"POST" and path.endswith(b"/chat/completions"):
            body = b"".join(self.body)
            # Cheap check instead of a JSON parse: the gateway and the wrk script send compact JSON.
            if b'"stream":true' in body or b'"stream": true' in body:
                write(STREAM_HEAD)
                for event in STREAM_EVENTS:
                    write(event)
            else:
                write(COMPLETION)
        elif method == b"GET" and path.endswith(b"/models"):
            write(MODELS)
        elif method == b"POST" and path == b"/v1/traces":  # the +traces row's OTLP collector: taken, dropped
            write(TRACES_TAKEN)
        else:
            write(NOT_FOUND)
        if not self.parser.should_keep_alive():
            self.transport.close()

    def connection_lost(self, exc):
        self.transport = None


async def serve(host: str, port: int):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(MockProtocol, host, port, reuse_address=True, backlog=2048)
    bound = server.sockets[0].getsockname()[1]
    print(f"ready {bound}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "9001")))
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port))
    sys.exit(0)


if __name__ == "__main__":
    main()
