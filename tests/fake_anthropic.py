"""A fake Anthropic Messages API for end-to-end tests, served by uvicorn on a loopback port.

It answers in Anthropic's own format: `POST /v1/messages` as a Message or as SSE with `event:` lines,
`GET /v1/models` as Anthropic's paginated listing. What it answers depends on the model name (see
`messages`); every request it receives is recorded.
"""


import orjson

from tests.fake_server import FakeServer

MODELS = ["claude-sonnet-4-20250514", "claude-tool", "claude-error-stream", "claude-fail-400", "claude-overloaded",
          "claude-opus-4-6", "claude-3-7-sonnet-20250219", "claude-rate-limited", "claude-break-stream"]
REPLY = ["Hello", " from", " fake", " Claude!"]
THOUGHT = ["The user greets me.", " I should greet back."]
# What the fake bills: uncached input, cache reads, cache writes, output.
USAGE = {"input_tokens": 12, "cache_creation_input_tokens": 2, "cache_read_input_tokens": 4, "output_tokens": 7,
         "service_tier": "standard"}
STREAM_START_USAGE = {"input_tokens": 25, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 5,
                      "output_tokens": 1, "service_tier": "standard"}
STREAM_OUTPUT_TOKENS = 9
COUNTED_INPUT_TOKENS = 42  # what POST /v1/messages/count_tokens answers
TOOL_CALLS = [("toolu_01", "get_weather", ['{"loc', 'ation": "Par', 'is"}']),
              ("toolu_02", "get_time", ['{"tz":', ' "CET"}'])]


def error_body(kind: str, message: str) -> dict:
    return {"type": "error", "error": {"type": kind, "message": message}}


class FakeAnthropic(FakeServer):
    def __init__(self):
        super().__init__()
        self.models = list(MODELS)
        self.recorded: dict[str, tuple[bytes, bytes]] = {}  # model -> (content type, body sent verbatim)

    # -- the ASGI app ------------------------------------------------------------------------
    async def handle(self, scope, headers, parsed, send):
        if not headers.get("x-api-key"):
            return await self._json(send, 401, error_body("authentication_error", "x-api-key header is required"))
        if not headers.get("anthropic-version"):
            return await self._json(send, 400, error_body("invalid_request_error",
                                                          "anthropic-version: header is required"))
        if scope["method"] == "GET" and scope["path"] == "/v1/models":
            data = [{"type": "model", "id": m, "display_name": m, "created_at": "2025-05-14T00:00:00Z"}
                    for m in self.models]
            return await self._json(send, 200, {"data": data, "has_more": False, "first_id": self.models[0],
                                                "last_id": self.models[-1]})
        if scope["method"] == "POST" and scope["path"] == "/v1/messages":
            return await self.messages(parsed, send)
        if scope["method"] == "POST" and scope["path"] == "/v1/messages/count_tokens":
            if parsed.get("model") == "claude-fail-400":
                return await self._json(send, 400, error_body("invalid_request_error", "messages: Field required"))
            return await self._json(send, 200, {"input_tokens": COUNTED_INPUT_TOKENS})
        return await self._json(send, 404, error_body("not_found_error", "Not found"))

    async def messages(self, body, send):
        model = body.get("model")
        if model in self.recorded:
            content_type, raw = self.recorded[model]
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})
            return await send({"type": "http.response.body", "body": raw})
        if not isinstance(body.get("max_tokens"), int):
            return await self._json(send, 400, error_body("invalid_request_error", "max_tokens: Field required"))
        if model == "claude-fail-400":
            return await self._json(send, 400, error_body("invalid_request_error",
                                                          "messages: text content blocks must be non-empty"))
        if model == "claude-overloaded":
            return await self._json(send, 529, error_body("overloaded_error", "Overloaded"))
        if model == "claude-rate-limited":
            return await self._json(send, 429, error_body("rate_limit_error", "Number of request tokens has "
                                                          "exceeded your per-minute rate limit"),
                                    [(b"retry-after", b"30")])
        if body.get("stream"):
            return await self.stream(body, send)
        content = []
        stop_reason = "end_turn"
        if body.get("thinking"):
            content.append({"type": "thinking", "thinking": "".join(THOUGHT), "signature": "c2lnbmF0dXJl"})
        if model == "claude-tool":
            content.append({"type": "text", "text": "Let me check."})
            for call_id, name, parts in TOOL_CALLS:
                content.append({"type": "tool_use", "id": call_id, "name": name,
                                "input": orjson.loads("".join(parts))})
            stop_reason = "tool_use"
        else:
            content.append({"type": "text", "text": "".join(REPLY)})
        await self._json(send, 200, {"id": "msg_fake_json", "type": "message", "role": "assistant", "model": model,
                                     "content": content, "stop_reason": stop_reason, "stop_sequence": None,
                                     "usage": USAGE})

    async def stream(self, body, send):
        model = body["model"]
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})

        async def event(name, payload):
            data = b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"
            await send({"type": "http.response.body", "body": data, "more_body": True})

        await event("message_start", {"type": "message_start", "message": {
            "id": "msg_fake_stream", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": STREAM_START_USAGE}})
        index = 0
        if body.get("thinking"):
            await event("content_block_start", {"type": "content_block_start", "index": index,
                                                "content_block": {"type": "thinking", "thinking": ""}})
            for piece in THOUGHT:
                await event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                    "delta": {"type": "thinking_delta", "thinking": piece}})
            await event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                "delta": {"type": "signature_delta", "signature": "c2ln"}})
            await event("content_block_stop", {"type": "content_block_stop", "index": index})
            index += 1
        await event("content_block_start", {"type": "content_block_start", "index": index,
                                            "content_block": {"type": "text", "text": ""}})
        await event("ping", {"type": "ping"})
        pieces = ["Let me check."] if model == "claude-tool" else REPLY
        for i, piece in enumerate(pieces):
            if model == "claude-break-stream" and i == 2:
                raise RuntimeError("upstream connection dropped")  # uvicorn aborts the connection
            if model == "claude-error-stream" and i == 2:
                await event("error", error_body("overloaded_error", "Overloaded"))
                await send({"type": "http.response.body", "body": b""})
                return
            if model == "claude-error-secrets" and i == 2:  # an error event that echoes the key and host
                headers = self.requests[-1]["headers"]
                await event("error", error_body("api_error", f"denied for key {headers.get('x-api-key')} at "
                                                             f"{headers.get('host')}"))
                await send({"type": "http.response.body", "body": b""})
                return
            await event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                "delta": {"type": "text_delta", "text": piece}})
        await event("content_block_stop", {"type": "content_block_stop", "index": index})
        stop_reason = "end_turn"
        if model == "claude-tool":
            for call_id, name, parts in TOOL_CALLS:
                index += 1
                await event("content_block_start", {"type": "content_block_start", "index": index, "content_block": {
                    "type": "tool_use", "id": call_id, "name": name, "input": {}}})
                await event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                    "delta": {"type": "input_json_delta", "partial_json": ""}})
                for part in parts:
                    await event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                        "delta": {"type": "input_json_delta", "partial_json": part}})
                await event("content_block_stop", {"type": "content_block_stop", "index": index})
            stop_reason = "tool_use"
        await event("message_delta", {"type": "message_delta",
                                      "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                      "usage": {"output_tokens": STREAM_OUTPUT_TOKENS}})
        await event("message_stop", {"type": "message_stop"})
        await send({"type": "http.response.body", "body": b""})

    def message_requests(self):
        return [r for r in self.requests if r["path"] == "/v1/messages"]
