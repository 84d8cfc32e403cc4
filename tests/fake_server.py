"""What the fake upstreams share: an ASGI app served by uvicorn on a loopback port in a thread, that
records every request it receives and answers JSON. Each fake implements `handle`."""

import threading
import time

import orjson
import uvicorn


class FakeServer:
    base_path = "/v1"
    query_as_text = False  # record the query string decoded (else bytes, as ASGI gives it)
    content_type = b"application/json"

    def __init__(self):
        self.requests: list[dict] = []
        self.server = None
        self.thread = None
        self.port = None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)  # not `+=`: a large body would be copied once per chunk
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        parsed = orjson.loads(body) if body else None
        query = scope["query_string"].decode() if self.query_as_text else scope["query_string"]
        self.requests.append({"method": scope["method"], "path": scope["path"], "query": query,
                              "headers": headers, "body": parsed})
        await self.handle(scope, headers, parsed, send)

    async def handle(self, scope, headers, body, send):
        raise NotImplementedError

    async def _json(self, send, status, payload, headers=()):
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", self.content_type), *headers]})
        await send({"type": "http.response.body", "body": orjson.dumps(payload)})

    def start(self):
        config = uvicorn.Config(self, host="127.0.0.1", port=0, log_level="critical", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.port = wait_for_port(self.server)
        return self

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=5)

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}{self.base_path}"


def wait_for_port(server, timeout=10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.started and server.servers:
            return server.servers[0].sockets[0].getsockname()[1]
        time.sleep(0.01)
    raise RuntimeError("server did not start")
