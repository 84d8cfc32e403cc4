"""A fake OpenAI-format upstream for end-to-end tests, served by uvicorn on a loopback port.

What it answers depends on the model name (see `behaviour`); every request it receives is recorded.
"""

import asyncio
import math
import re
import threading
import time
import zlib

import orjson

from tests.fake_server import FakeServer

MODELS = ["gpt-4o-mini", "tool-model", "fail-429", "fail-401", "fail-400", "fail-500", "slow", "break-stream",
          "error-event", "long-stream", "no-usage", "flaky", "text-embedding-3-small", "gpt-4o-long-stream",
          "think-model"]
LONG_STREAMS = ("long-stream", "gpt-4o-long-stream")  # the second: a model with an OpenAI tokenizer
# Answered too, though not listed (ask for them as "openai/<name>"): fail-text, huge-body, long-line,
# trickle, error-event-secrets (chat and Responses streams), last-tool-model (chat). Embeddings also answer
# fail-429, fail-text and slow, and bag-<anything> with bag_of_words vectors (the semantic cache's tests).
TRICKLE_CHUNKS = 200  # model "trickle": one content chunk every TRICKLE_EVERY seconds, this many at most
TRICKLE_EVERY = 0.05
REPLY = ["Hello", " from", " the", " fake", " upstream", "!"]
REASONING = ["The user", " says hello."]  # "think-model" reasons first, in `reasoning_content` (DeepSeek's field)
TRANSCRIPT = "Hello from the fake upstream!"  # what /audio/transcriptions and /translations answer
SPEECH = b"ID3" + bytes(range(256)) * 40  # what /audio/speech answers: bytes, as audio is


STOPWORDS = frozenset("a an the what whats s is are of me tell please could you can i to in do does which".split())


# tool-model calls get_weather; last-tool-model calls the last function it was offered, under the name it got.
TOOL_MODELS = ("tool-model", "last-tool-model")


def called_tool(body: dict) -> str:
    if body["model"] == "last-tool-model":
        return body["tools"][-1]["function"]["name"]
    return "get_weather"


def bag_of_words(text: str, size: int = 64) -> list[float]:
    """A deterministic embedding: the text's words but stopwords, hashed into `size` buckets, unit length. "What is
    the capital of France?" and "Tell me, what's the capital of France please" are the same vector; "… of Spain?"
    is 0.5 away."""
    vector = [0.0] * size
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        if word not in STOPWORDS:
            vector[zlib.crc32(word.encode()) % size] += 1.0
    if not any(vector):
        vector[0] = 1.0
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector]


class FakeUpstream(FakeServer):
    def __init__(self):
        super().__init__()
        self.models = list(MODELS)
        self.flaky_failures = 0  # how many more times model "flaky" answers 503 before it succeeds
        self.retry_after = b"0"
        # Per key (the bearer token it was sent): (status, Retry-After or None) answered to any chat call with it.
        self.key_answers: dict[str, tuple[int, bytes | None]] = {}
        self.batches: dict[str, dict] = {}
        self.files: dict[str, dict] = {}  # /files: id → the file object, with its bytes in "_content"
        self.reset_content()

    def reset_content(self):
        """/files/{id}/content: in one body (0), or in pieces of `content_chunk` bytes `content_pause` seconds
        apart, with a content-length unless `content_declared` is off, cut (the connection dropped) once
        `content_cut_at` bytes went."""
        self.content_chunk = 0
        self.content_declared = True
        self.content_cut_at: int | None = None
        self.content_pause = 0.0  # seconds between two pieces
        self.content_sent = 0  # bytes of the last piecewise content handed to the server
        self.content_abandoned = threading.Event()  # its reader went away before the end

    def keys_used(self) -> list[str]:
        """The bearer token of every chat call received, in order."""
        return [r["headers"].get("authorization", "").removeprefix("Bearer ") for r in self.requests
                if r["path"].endswith("/chat/completions")]

    # -- the ASGI app ------------------------------------------------------------------------
    async def handle(self, scope, headers, parsed, send):
        if scope["path"].endswith("/models"):
            return await self._json(send, 200, {"object": "list", "data": [
                {"id": m, "object": "model", "owned_by": "fake"} for m in self.models]})
        if scope["path"].endswith("/chat/completions"):
            return await self.chat(parsed, send)
        if scope["path"].endswith("/embeddings"):
            return await self.embeddings(parsed, send)
        if scope["path"].endswith("/responses"):
            return await self.responses(parsed, send)
        if "/batches" in scope["path"]:
            return await self.batches_api(scope["method"], scope["path"].split("/batches", 1)[1], parsed, send)
        if "/files" in scope["path"]:
            return await self.files_api(scope["method"], scope["path"].split("/files", 1)[1], parsed, send,
                                        scope.get("receive"))
        if scope["path"].endswith(("/audio/transcriptions", "/audio/translations", "/images/edits")):
            return await self.upload(scope["path"].rsplit("/", 1)[-1], parsed, send)
        if scope["path"].endswith(("/images/generations", "/audio/speech", "/moderations")):
            return await self.media(scope["path"].rsplit("/", 1)[-1], parsed, send)
        return await self._json(send, 404, {"error": {"message": "no such route", "type": "invalid_request_error"}})

    async def chat(self, body, send):
        model = body["model"]
        answer = self.key_answers.get(self.requests[-1]["headers"].get("authorization", "").removeprefix("Bearer "))
        if answer is not None:
            status, retry_after = answer
            return await self._json(send, status, {"error": {"message": f"key answered {status}",
                                                             "type": "requests"}},
                                    [(b"retry-after", retry_after)] if retry_after else [])
        if model.startswith("delay-"):  # "delay-<model>": half a second, then as <model> (coalescing tests)
            await asyncio.sleep(0.5)
            model = body["model"] = model[6:]
        if model == "fail-429":
            return await self._json(send, 429, {"error": {"message": "Rate limit reached for requests",
                                                          "type": "requests", "code": "rate_limit_exceeded"}},
                                    [(b"retry-after", b"7")])
        if model == "fail-401":
            return await self._json(send, 401, {"error": {"message": "Incorrect API key provided: sk-up***",
                                                          "type": "invalid_request_error"}})
        if model == "fail-400":
            return await self._json(send, 400, {"error": {"message": "temperature is out of range",
                                                          "type": "invalid_request_error", "param": "temperature",
                                                          "code": "invalid_value"}})
        if model == "fail-500":
            return await self._json(send, 500, {"error": {"message": "The server had an error"}})
        if model == "fail-text":  # a proxy's plain-text page that echoes what it was sent
            request = self.requests[-1]["headers"]
            text = (f"502 Bad Gateway at {request.get('host')}: upstream refused {request.get('authorization')} "
                    f"(key {request.get('authorization', '').removeprefix('Bearer ')}); internal token "
                    "ZXhhbXBsZV9pbnRlcm5hbF9zZWNyZXRfdG9rZW4xMjM0NTY3OA== and sk-proj-abcdefghijklmnopqrstuv")
            await send({"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"text/plain")]})
            return await send({"type": "http.response.body", "body": text.encode()})
        if model == "huge-body":  # a 200 far bigger than any real completion, sent in pieces
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            for _ in range(int(body.get("huge_mib", 4))):
                await send({"type": "http.response.body", "body": b" " * (1024 * 1024), "more_body": True})
            return await send({"type": "http.response.body", "body": b"{}"})
        if model == "slow":
            await asyncio.sleep(10)
        if model == "flaky" and self.flaky_failures > 0:
            self.flaky_failures -= 1
            return await self._json(send, 503, {"error": {"message": "overloaded, try again"}},
                                    [(b"retry-after", self.retry_after)])
        if body.get("stream"):
            return await self.stream(body, send)
        completion = len(REPLY)
        message = {"role": "assistant", "content": "".join(REPLY)}
        finish = "stop"
        if model in TOOL_MODELS:
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": called_tool(body),
                                                                  "arguments": '{"city":"Paris"}'}}]}
            finish = "tool_calls"
        if model == "think-model":
            message["reasoning_content"] = "".join(REASONING)
        payload = {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": model,
                   "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
                   "usage": {"prompt_tokens": 11, "completion_tokens": completion, "total_tokens": 11 + completion,
                             "prompt_tokens_details": {"cached_tokens": 2},
                             "completion_tokens_details": {"reasoning_tokens": 0}}}
        if model == "no-usage":
            del payload["usage"]
        await self._json(send, 200, payload)

    async def embeddings(self, body, send):
        if body["model"] == "fail-500":
            return await self._json(send, 500, {"error": {"message": "embedding backend down"}})
        if body["model"] in ("fail-429", "fail-text"):  # the same answers as chat's
            return await self.chat(body, send)
        if body["model"] == "slow":
            await asyncio.sleep(10)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if body["model"].startswith("bag-"):  # the semantic cache's embedder: a paraphrase maps near
            data = [{"object": "embedding", "index": i, "embedding": bag_of_words(text)}
                    for i, text in enumerate(inputs)]
        else:
            data = [{"object": "embedding", "index": i, "embedding": [0.1 * (i + 1), 0.2, 0.3]}
                    for i in range(len(inputs))]
        tokens = 3 * len(inputs)
        await self._json(send, 200, {"object": "list", "data": data, "model": body["model"],
                                     "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def stream(self, body, send):
        model = body["model"]
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})

        async def event(payload):
            data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
            await send({"type": "http.response.body", "body": b"data: " + data + b"\n\n", "more_body": True})

        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
        want_usage = (body.get("stream_options") or {}).get("include_usage")
        if want_usage:
            base["usage"] = None
        await event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                          "finish_reason": None}]})
        if model == "long-line":  # one SSE line of 4 MiB: past a 1 MiB cap, under the 8 MiB default one
            for _ in range(4):
                await send({"type": "http.response.body", "body": b"data: " + b"x" * (1024 * 1024),
                            "more_body": True})
            return await send({"type": "http.response.body", "body": b"\n\n"})
        if model == "error-event-secrets":
            authorization = self.requests[-1]["headers"].get("authorization", "")
            await event({"error": {"message": f"denied for {authorization} at {self.requests[-1]['headers']['host']}",
                                   "type": "server_error"}})
            return await send({"type": "http.response.body", "body": b""})
        pieces = REPLY * 50 if model in LONG_STREAMS else REPLY * (TRICKLE_CHUNKS // len(REPLY)) if (
            model == "trickle") else REPLY
        if model == "think-model":
            for thought in REASONING:
                await event({**base, "choices": [{"index": 0, "delta": {"reasoning_content": thought},
                                                  "finish_reason": None}]})
        if model in TOOL_MODELS:
            await event({**base, "choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "id": "call_1", "type": "function", "function": {"name": called_tool(body),
                                                                              "arguments": ""}}]},
                "finish_reason": None}]})
            for part in ['{"ci', 'ty":', '"Paris"}']:
                await event({**base, "choices": [{"index": 0, "delta": {"tool_calls": [
                    {"index": 0, "function": {"arguments": part}}]}, "finish_reason": None}]})
            pieces, finish = [], "tool_calls"
        else:
            finish = "stop"
        for i, piece in enumerate(pieces):
            if model == "break-stream" and i == 2:
                raise RuntimeError("upstream connection dropped")  # uvicorn aborts the connection
            if model == "error-event" and i == 2:
                await event({"error": {"message": "overloaded", "type": "server_error"}})
                await send({"type": "http.response.body", "body": b""})
                return
            if model in LONG_STREAMS:
                await asyncio.sleep(0.01)
            if model == "trickle":
                await asyncio.sleep(TRICKLE_EVERY)
            await event({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
        await event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        if want_usage and model != "no-usage":
            n = 3 if model == "tool-model" else len(pieces)
            await event({**base, "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": n,
                                                          "total_tokens": 11 + n}})
        await event(b"[DONE]")
        await send({"type": "http.response.body", "body": b""})

    # -- the Responses API (shapes as tests/fixtures/recorded/openai/responses*) ------------------
    async def responses(self, body, send):
        model = body["model"]
        if model == "fail-500":
            return await self._json(send, 500, {"error": {"message": "The server had an error"}})
        if model == "fail-400":
            return await self._json(send, 400, {"error": {"message": "Invalid value for 'temperature'.",
                                                          "type": "invalid_request_error", "param": "temperature",
                                                          "code": "invalid_value"}})
        if model == "fail-text":
            return await self.chat(body, send)
        response_id = "resp_fake0123456789"
        if model == "tool-model":
            item = {"id": "fc_fake1", "type": "function_call", "status": "completed", "call_id": "call_1",
                    "name": "get_weather", "arguments": '{"city":"Paris"}'}
        else:
            item = {"id": "msg_fake1", "type": "message", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": "".join(REPLY)}]}
        usage = {"input_tokens": 17, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": len(REPLY),
                 "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 17 + len(REPLY)}

        def response(status, output, usage=None):
            return {"id": response_id, "object": "response", "created_at": int(time.time()), "status": status,
                    "background": False, "error": None, "incomplete_details": None,
                    "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
                    "model": model + "-2024-07-18", "output": output, "parallel_tool_calls": True,
                    "previous_response_id": None, "reasoning": {"effort": None, "summary": None},
                    "store": body.get("store", True), "temperature": 1.0, "text": {"format": {"type": "text"}},
                    "tool_choice": "auto", "tools": body.get("tools") or [], "top_p": 1.0, "truncation": "disabled",
                    "usage": usage, "user": None, "metadata": {}}

        if not body.get("stream"):
            return await self._json(send, 200, response("completed", [item], usage))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream; charset=utf-8")]})
        sequence = 0

        async def event(kind, **fields):
            nonlocal sequence
            payload = {"type": kind, **fields, "sequence_number": sequence}
            sequence += 1
            await send({"type": "http.response.body", "more_body": True,
                        "body": b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"})

        await event("response.created", response=response("in_progress", []))
        await event("response.in_progress", response=response("in_progress", []))
        if item["type"] == "function_call":
            await event("response.output_item.added", output_index=0, item={**item, "arguments": "",
                                                                             "status": "in_progress"})
            for part in ['{"ci', 'ty":', '"Paris"}']:
                await event("response.function_call_arguments.delta", item_id=item["id"], output_index=0, delta=part)
            await event("response.function_call_arguments.done", item_id=item["id"], output_index=0,
                        arguments=item["arguments"])
        else:
            await event("response.output_item.added", output_index=0,
                        item={**item, "status": "in_progress", "content": []})
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
            await event("response.content_part.added", item_id=item["id"], output_index=0, content_index=0, part=part)
            for i, piece in enumerate(REPLY):
                if model == "break-stream" and i == 2:
                    raise RuntimeError("upstream connection dropped")  # uvicorn aborts the connection
                if model in ("error-event", "error-event-secrets") and i == 2:  # the upstream's own terminal failure
                    headers = self.requests[-1]["headers"]
                    message = "The model failed to generate a response." if model == "error-event" else (
                        f"denied for {headers.get('authorization')} at {headers.get('host')}")
                    await event("response.failed", response={**response("failed", []), "error": {
                        "code": "server_error", "message": message}})
                    await send({"type": "http.response.body", "body": b""})
                    return
                await event("response.output_text.delta", item_id=item["id"], output_index=0, content_index=0,
                            delta=piece, logprobs=[])
            text = "".join(REPLY)
            await event("response.output_text.done", item_id=item["id"], output_index=0, content_index=0, text=text,
                        logprobs=[])
            await event("response.content_part.done", item_id=item["id"], output_index=0, content_index=0,
                        part={**part, "text": text})
        await event("response.output_item.done", output_index=0, item=item)
        await event("response.completed", response=response("completed", [item], usage))
        await send({"type": "http.response.body", "body": b""})

    # -- media: images (with gpt-image's token usage), speech (audio bytes), moderations ----------------
    async def media(self, kind, body, send):
        model = body["model"]
        if model in ("fail-429", "fail-500", "fail-text", "fail-400"):
            return await self.chat(body, send)
        if model == "slow":
            await asyncio.sleep(10)
        if kind == "generations" and model.startswith("dall-e"):  # dall-e answers no usage: billed per image
            return await self._json(send, 200, {"created": int(time.time()),
                                                "data": [{"url": f"https://img.example/{i}.png"}
                                                         for i in range(body.get("n") or 1)]})
        if kind == "generations":
            return await self._json(send, 200, {"created": int(time.time()), "data": [{"b64_json": "aGVsbG8="}],
                                                "usage": {"input_tokens": 10, "output_tokens": 100,
                                                          "total_tokens": 110,
                                                          "input_tokens_details": {"text_tokens": 10}}})
        if kind == "speech":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"audio/mpeg")]})
            return await send({"type": "http.response.body", "body": SPEECH})
        return await self._json(send, 200, {"id": "modr-fake", "model": model, "results": [
            {"flagged": False, "categories": {"violence": False}, "category_scores": {"violence": 0.001}}]})

    # -- uploads (multipart): transcriptions and translations (text, with gpt-4o-transcribe's token usage
    # unless the model is whisper-1: seconds), image edits (gpt-image's token usage) ---------------------------
    async def upload(self, kind, form, send):
        model = form["model"]
        if model in ("fail-429", "fail-500", "fail-text", "fail-400"):
            return await self.chat({**form, "stream": False}, send)
        if model == "slow":
            await asyncio.sleep(10)
        if kind == "edits":
            return await self._json(send, 200, {"created": int(time.time()), "data": [{"b64_json": "ZWRpdGVk"}],
                                                "usage": {"input_tokens": 20, "output_tokens": 100,
                                                          "total_tokens": 120}})
        if form.get("stream") == "true":
            return await self.transcript_stream(model, send)
        if form.get("response_format") == "text":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
            return await send({"type": "http.response.body", "body": TRANSCRIPT.encode()})
        usage = {"type": "duration", "seconds": 3} if model == "whisper-1" else {
            "type": "tokens", "input_tokens": 14, "output_tokens": 6, "total_tokens": 20,
            "input_token_details": {"text_tokens": 0, "audio_tokens": 14}}
        await self._json(send, 200, {"text": TRANSCRIPT, "usage": usage})

    async def transcript_stream(self, model, send):
        """gpt-4o-transcribe's stream: `transcript.text.delta` events, then `.done` with the usage (the models
        of chat's streams behave alike: long-stream, trickle, long-line, error-event-secrets)."""
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})

        async def event(payload):
            await send({"type": "http.response.body", "body": b"data: " + orjson.dumps(payload) + b"\n\n",
                        "more_body": True})

        if model == "long-line":
            for _ in range(4):
                await send({"type": "http.response.body", "body": b"data: " + b"x" * (1024 * 1024), "more_body": True})
            return await send({"type": "http.response.body", "body": b"\n\n"})
        if model == "error-event-secrets":
            headers = self.requests[-1]["headers"]
            await event({"type": "error", "error": {"message": f"denied for {headers.get('authorization')} at "
                                                               f"{headers['host']}", "type": "server_error"}})
            return await send({"type": "http.response.body", "body": b""})
        pieces = REPLY * 50 if model in LONG_STREAMS else REPLY * (TRICKLE_CHUNKS // len(REPLY)) if (
            model == "trickle") else REPLY
        for piece in pieces:
            if model in LONG_STREAMS:
                await asyncio.sleep(0.01)
            if model == "trickle":
                await asyncio.sleep(TRICKLE_EVERY)
            await event({"type": "transcript.text.delta", "delta": piece, "logprobs": []})
        await event({"type": "transcript.text.done", "text": "".join(pieces), "logprobs": [],
                     "usage": {"type": "tokens", "input_tokens": 14, "output_tokens": len(pieces),
                               "total_tokens": 14 + len(pieces)}})
        await send({"type": "http.response.body", "body": b""})

    # -- /files: upload (multipart), list, retrieve, content, delete ----------------------------------------
    async def files_api(self, method, rest, form, send, receive=None):
        parts = rest.strip("/").split("/") if rest.strip("/") else []
        if method == "POST" and not parts:
            filename, content = form["file"]
            file_id = f"file-fake{len(self.files) + 1:04d}"
            self.files[file_id] = {"id": file_id, "object": "file", "bytes": len(content),
                                   "created_at": int(time.time()), "filename": filename, "purpose": form["purpose"],
                                   "status": "processed", "_content": content}
            return await self._json(send, 200, self.public(self.files[file_id]))
        if method == "GET" and not parts:
            return await self._json(send, 200, {"object": "list", "data": [self.public(f) for f in self.files.values()],
                                                "has_more": False})
        stored = self.files.get(parts[0]) if parts else None
        if stored is None:
            return await self._json(send, 404, {"error": {"message": f"No such File object: {parts[:1]}",
                                                          "type": "invalid_request_error", "param": "id",
                                                          "code": None}})
        if method == "GET" and parts[1:] == ["content"] and self.content_chunk:
            return await self.content_in_pieces(receive, stored["_content"], send)
        if method == "GET" and parts[1:] == ["content"]:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/octet-stream")]})
            return await send({"type": "http.response.body", "body": stored["_content"]})
        if method == "GET":
            return await self._json(send, 200, self.public(stored))
        del self.files[parts[0]]
        return await self._json(send, 200, {"id": parts[0], "object": "file", "deleted": True})

    async def content_in_pieces(self, receive, content, send):
        length = [(b"content-length", b"%d" % len(content))] if self.content_declared else []
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream"), *length]})
        gone = asyncio.ensure_future(self._disconnect(receive))
        self.content_sent = 0
        try:
            for at in range(0, len(content), self.content_chunk):
                if self.content_cut_at is not None and at >= self.content_cut_at:
                    raise ConnectionAbortedError("the fake cuts the file mid-way")  # uvicorn drops the connection
                await send({"type": "http.response.body", "body": content[at:at + self.content_chunk],
                            "more_body": True})
                await asyncio.sleep(self.content_pause)  # and the disconnect watcher's turn
                if gone.done():
                    self.content_abandoned.set()
                    return
                self.content_sent = min(at + self.content_chunk, len(content))
            await send({"type": "http.response.body", "body": b""})
        finally:
            gone.cancel()

    @staticmethod
    async def _disconnect(receive):
        while (await receive())["type"] != "http.disconnect":
            pass

    # -- /batches: created from an uploaded file; the first GET finds it completed, with an output file of one
    # chat completion per input line (11 prompt and 6 completion tokens each) ---------------------------------
    async def batches_api(self, method, rest, body, send):
        parts = rest.strip("/").split("/") if rest.strip("/") else []
        if method == "POST" and not parts:
            batch_id = f"batch_fake{len(self.batches) + 1:04d}"
            self.batches[batch_id] = {
                "id": batch_id, "object": "batch", "endpoint": body["endpoint"], "errors": None,
                "input_file_id": body["input_file_id"], "completion_window": body.get("completion_window"),
                "status": "validating", "output_file_id": None, "error_file_id": None,
                "created_at": int(time.time()), "metadata": body.get("metadata"),
                "request_counts": {"total": 0, "completed": 0, "failed": 0}}
            return await self._json(send, 200, self.batches[batch_id])
        batch = self.batches.get(parts[0]) if parts else None
        if batch is None:
            return await self._json(send, 404, {"error": {"message": "No such batch", "type": "invalid_request_error"}})
        if method == "POST" and parts[1:] == ["cancel"]:
            batch["status"] = "cancelled"
        elif batch["status"] == "validating":
            lines = [orjson.loads(line) for line in self.files[batch["input_file_id"]]["_content"].splitlines()
                     if line.strip()]
            output = b"".join(orjson.dumps({
                "id": f"batch_req_{n}", "custom_id": line["custom_id"], "error": None,
                "response": {"status_code": 200, "request_id": f"req_{n}", "body": {
                    "id": f"chatcmpl-{n}", "object": "chat.completion", "model": line["body"]["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(REPLY)},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 11, "completion_tokens": 6, "total_tokens": 17}}}}) + b"\n"
                for n, line in enumerate(lines))
            file_id = f"file-fake{len(self.files) + 1:04d}"
            self.files[file_id] = {"id": file_id, "object": "file", "bytes": len(output),
                                   "created_at": int(time.time()), "filename": "batch_output.jsonl",
                                   "purpose": "batch_output", "status": "processed", "_content": output}
            batch.update(status="completed", output_file_id=file_id,
                         request_counts={"total": len(lines), "completed": len(lines), "failed": 0})
        return await self._json(send, 200, batch)

    @staticmethod
    def public(stored):
        return {name: value for name, value in stored.items() if not name.startswith("_")}

    def responses_requests(self):
        return [r for r in self.requests if r["path"].endswith("/responses")]

    def chat_requests(self):
        return [r for r in self.requests if r["path"].endswith("/chat/completions")]

