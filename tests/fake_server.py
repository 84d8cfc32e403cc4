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
        form = headers.get("content-type", "").startswith("multipart/form-data")
        parsed = parse_form(headers["content-type"], body) if form else orjson.loads(body) if body else None
        query = scope["query_string"].decode() if self.query_as_text else scope["query_string"]
        self.requests.append({"method": scope["method"], "path": scope["path"], "query": query,
                              "headers": headers, "body": parsed, **({"raw": body} if form else {})})
        scope = {**scope, "receive": receive}  # for a handler that watches for its reader going away
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


def parse_form(content_type: str, body: bytes) -> dict:
    """A multipart body as {name: text} for fields and {name: (filename, bytes)} for files."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    boundary = parse_options_header(content_type)[1][b"boundary"]
    fields: dict = {}
    state: dict = {}

    def header_field(data, start, end):
        state["header"] = state.get("header", b"") + data[start:end]

    def header_value(data, start, end):
        state["value"] = state.get("value", b"") + data[start:end]

    def header_end():
        if state.pop("header", b"").lower() == b"content-disposition":
            state["disposition"] = parse_options_header(state.get("value", b""))[1]
        state.pop("value", None)

    def part_data(data, start, end):
        state["data"] = state.get("data", b"") + data[start:end]

    def part_end():
        options = state.pop("disposition")
        data = state.pop("data", b"")
        name = options[b"name"].decode()
        fields[name] = (options[b"filename"].decode(), data) if b"filename" in options else data.decode()

    parser = MultipartParser(boundary, {"on_header_field": header_field, "on_header_value": header_value,
                                        "on_header_end": header_end, "on_part_data": part_data,
                                        "on_part_end": part_end})
    parser.write(body)
    parser.finalize()
    return fields


def wait_for_port(server, timeout=10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.started and server.servers:
            return server.servers[0].sockets[0].getsockname()[1]
        time.sleep(0.01)
    raise RuntimeError("server did not start")
