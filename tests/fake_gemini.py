"""A fake Google Gemini upstream (native API) for end-to-end tests, served by uvicorn on a loopback port.

It answers like https://ai.google.dev/api/generate-content documents:
`POST /v1beta/models/{model}:generateContent` with one GenerateContentResponse, and
`POST /v1beta/models/{model}:streamGenerateContent?alt=sse` with `data: {GenerateContentResponse}` events
(CRLF framed, no [DONE]); `GET /v1beta/models` lists models as https://ai.google.dev/api/models does.
What it answers depends on the model name (see MODELS); every request it receives is recorded.
"""


import orjson

from tests.fake_server import FakeServer

MODELS = {
    "gemini-2.5-flash": "text (with thought parts when the request asks includeThoughts)",
    "gemini-3-pro-preview": "the same, for the thinkingLevel path",
    "gemini-tool": "a functionCall get_weather({'city': 'Paris'}) with a thoughtSignature",
    "gemini-blocked": "a prompt blocked for SAFETY: no candidates, promptFeedback.blockReason",
    "gemini-break": "a stream whose connection drops after two events",
    "gemini-error-event": "a stream that sends an error object after two events",
    "gemini-bad-request": "HTTP 400 with Google's error body",
}
REPLY = ["Hello", " from", " the", " fake", " Gemini", "!"]
THOUGHTS = ["**Greeting the user**\n\nThe user says hello; ", "a short friendly answer will do."]
PROMPT_TOKENS, CANDIDATE_TOKENS, THOUGHT_TOKENS, CACHED_TOKENS = 12, 6, 9, 4
RESPONSE_ID = "fake-resp-1"
SIGNATURE = "CiQBVKhc7nFakeThoughtSignature0123456789abcdef=="  # opaque base64, echoed back by clients


def usage(thinking: bool, final: bool = True) -> dict:
    """usageMetadata: cumulative; early stream events carry only the prompt side."""
    meta = {"promptTokenCount": PROMPT_TOKENS, "totalTokenCount": PROMPT_TOKENS,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": PROMPT_TOKENS}]}
    if final:
        meta["candidatesTokenCount"] = CANDIDATE_TOKENS
        meta["cachedContentTokenCount"] = CACHED_TOKENS
        meta["totalTokenCount"] = PROMPT_TOKENS + CANDIDATE_TOKENS
        if thinking:
            meta["thoughtsTokenCount"] = THOUGHT_TOKENS
            meta["totalTokenCount"] += THOUGHT_TOKENS
    return meta


class FakeGemini(FakeServer):
    base_path = "/v1beta"
    query_as_text = True
    content_type = b"application/json; charset=UTF-8"

    def __init__(self):
        super().__init__()

    # -- the ASGI app ------------------------------------------------------------------------
    async def handle(self, scope, headers, parsed, send):
        path = scope["path"]
        if headers.get("x-goog-api-key") != "gm-upstream-secret":
            return await self._json(send, 403, {"error": {"code": 403, "message": "API key not valid.",
                                                          "status": "PERMISSION_DENIED"}})
        if scope["method"] == "GET" and path == "/v1beta/models":
            return await self._json(send, 200, {"models": [
                {"name": f"models/{name}", "displayName": name, "inputTokenLimit": 1048576, "outputTokenLimit": 65536,
                 "supportedGenerationMethods": ["generateContent", "countTokens"]} for name in MODELS
            ] + [{"name": "models/text-embedding-004", "supportedGenerationMethods": ["embedContent"]}]})
        prefix = "/v1beta/models/"
        if scope["method"] == "POST" and path.startswith(prefix) and ":" in path:
            model, _, method = path[len(prefix):].partition(":")
            if method == "generateContent":
                return await self.generate(model, parsed, send)
            if method == "streamGenerateContent":
                return await self.stream(model, parsed, send)
            if method == "batchEmbedContents":
                return await self._json(send, 200, {"embeddings": [
                    {"values": [0.1 * (i + 1), 0.2, 0.3]} for i, _ in enumerate(parsed["requests"])]})
        return await self._json(send, 404, {"error": {"code": 404, "message": "Not found.", "status": "NOT_FOUND"}})

    @staticmethod
    def thinking(body) -> bool:
        config = ((body or {}).get("generationConfig") or {}).get("thinkingConfig") or {}
        return config.get("includeThoughts") is True

    def envelope(self, model, candidates=None, meta=None, **extra) -> dict:
        payload = {}
        if candidates is not None:
            payload["candidates"] = candidates
        if meta is not None:
            payload["usageMetadata"] = meta
        payload.update(extra)
        payload["modelVersion"] = model
        payload["responseId"] = RESPONSE_ID
        return payload

    async def generate(self, model, body, send):
        if model == "gemini-bad-request":
            return await self._json(send, 400, {"error": {
                "code": 400, "message": "* GenerateContentRequest.contents: contents is not specified\n",
                "status": "INVALID_ARGUMENT"}})
        if model == "gemini-blocked":
            return await self._json(send, 200, self.envelope(
                model, meta={"promptTokenCount": PROMPT_TOKENS, "totalTokenCount": PROMPT_TOKENS},
                promptFeedback={"blockReason": "SAFETY", "safetyRatings": [
                    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]}))
        thinking = self.thinking(body)
        if model == "gemini-tool":
            parts = [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                      "thoughtSignature": SIGNATURE}]
        else:
            parts = [{"text": "".join(THOUGHTS), "thought": True}] if thinking else []
            parts.append({"text": "".join(REPLY)})
        candidate = {"content": {"parts": parts, "role": "model"}, "finishReason": "STOP", "index": 0}
        await self._json(send, 200, self.envelope(model, [candidate], usage(thinking)))

    async def stream(self, model, body, send):
        if model == "gemini-bad-request":
            return await self.generate(model, body, send)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"), (b"x-content-type-options", b"nosniff")]})

        async def event(payload):
            await send({"type": "http.response.body", "body": b"data: " + orjson.dumps(payload) + b"\r\n\r\n",
                        "more_body": True})

        def candidate(parts, finish=None):
            entry = {"content": {"parts": parts, "role": "model"}, "index": 0}
            if finish:
                entry["finishReason"] = finish
            return [entry]

        thinking = self.thinking(body)
        if model == "gemini-blocked":
            await event(self.envelope(model, meta={"promptTokenCount": PROMPT_TOKENS,
                                                   "totalTokenCount": PROMPT_TOKENS},
                                      promptFeedback={"blockReason": "SAFETY"}))
        elif model == "gemini-tool":
            await event(self.envelope(model, candidate(
                [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SIGNATURE}],
                "STOP"), usage(False)))
        else:
            if thinking:
                for thought in THOUGHTS:
                    await event(self.envelope(model, candidate([{"text": thought, "thought": True}]),
                                              usage(True, final=False)))
            for i, piece in enumerate(REPLY):
                if i == 2 and model == "gemini-break":
                    raise RuntimeError("upstream connection dropped")  # uvicorn aborts the connection
                if i == 2 and model == "gemini-error-event":
                    await event({"error": {"code": 503, "message": "The model is overloaded. Please try again "
                                                                   "later.", "status": "UNAVAILABLE"}})
                    break
                last = i == len(REPLY) - 1
                await event(self.envelope(model, candidate([{"text": piece}], "STOP" if last else None),
                                          usage(thinking, final=last)))
        await send({"type": "http.response.body", "body": b""})

    def generate_requests(self):
        return [r for r in self.requests if r["method"] == "POST"]
