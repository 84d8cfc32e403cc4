"""A request body limit for the Django side (admin, dashboard, management API, unknown routes), enforced
as the body streams in. Django's ASGI handler reads the whole body (to a temporary file) before routing,
authentication or DATA_UPLOAD_MAX_MEMORY_SIZE get a say, so a 50 MiB upload to /admin/login/ or to a
route that does not exist was read in full before its 401/403/404. This answers 413 as soon as the
declared Content-Length, or the bytes received so far (chunked uploads), exceed the limit."""

import orjson


def too_large_body(limit: int) -> bytes:
    return orjson.dumps({"detail": f"Request body too large: the limit is {limit} bytes (DJANGO_BODY_SIZE_LIMIT)."})


class BodySizeLimit:
    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.limit <= 0:
            return await self.app(scope, receive, send)
        declared = next((value for name, value in scope["headers"] if name == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send)

        received = 0
        refused = False

        async def limited_receive():
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    refused = True
                    await self._refuse(send)
                    return {"type": "http.disconnect"}  # Django stops reading and answers nothing
            return message

        async def guarded_send(message):
            if not refused:
                await send(message)

        await self.app(scope, limited_receive, guarded_send)

    async def _refuse(self, send):
        body = too_large_body(self.limit)
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
