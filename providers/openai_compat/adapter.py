from typing import Any

import orjson

from ..base import StreamError, Target, UpstreamRequest, Usage
from .quirks import adapt_body, extra_headers

STANDARD_USAGE_KEYS = frozenset(
    ("prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details", "completion_tokens_details")
)


def auth_headers(target: Target) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept": "application/json"}
    if target.api_key:
        headers["authorization"] = f"Bearer {target.api_key}"
    headers.update(extra_headers(target.provider_type))
    return headers


def build_chat_request(body: dict[str, Any], target: Target, model: str, stream: bool) -> UpstreamRequest:
    """Forward the client's body as it came (unknown fields untouched), with the upstream's model name.

    Streams always ask for usage, so that what the tenant is billed is what the upstream reported.
    """
    body = dict(body)
    body.pop("provider", None)
    body["model"] = model
    adapt_body(body, target.provider_type, model)
    if stream:
        options = body.get("stream_options")
        body["stream_options"] = {**options, "include_usage": True} if isinstance(options, dict) else {
            "include_usage": True}
    headers = auth_headers(target)
    if stream:
        headers["accept"] = "text/event-stream"
    return UpstreamRequest("POST", f"{target.base_url}/chat/completions", headers, orjson.dumps(body))


def with_raw_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """Keep a provider's own usage fields (Groq's timings, xAI's cost ticks) under `raw_usage`."""
    if isinstance(usage, dict) and not STANDARD_USAGE_KEYS.issuperset(usage):
        return {**usage, "raw_usage": dict(usage)}
    return usage


def parse_chat_response(raw: bytes) -> tuple[dict[str, Any], Usage | None]:
    data = orjson.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("upstream answered with a JSON value that is not an object")
    usage = data.get("usage")
    if isinstance(usage, dict):
        data["usage"] = with_raw_usage(usage)
    return data, Usage.from_openai(usage)


class StreamParser:
    """Turns the upstream's SSE events into OpenAI chunks (here: the same chunks)."""

    __slots__ = ("model", "usage", "done", "finished")

    def __init__(self, model: str = ""):
        self.model = model
        self.usage: Usage | None = None
        self.done = False  # the upstream sent [DONE]
        self.finished = False  # a choice carried a finish_reason

    @property
    def complete(self) -> bool:
        return self.done or self.finished

    def feed(self, event: str | None, data: bytes) -> list[dict[str, Any]]:
        if data == b"[DONE]":
            self.done = True
            return []
        chunk = orjson.loads(data)
        if not isinstance(chunk, dict):
            return []
        if "error" in chunk and not chunk.get("choices"):
            err = chunk["error"]
            message = err.get("message", "upstream stream error") if isinstance(err, dict) else str(err)
            raise StreamError(str(message))
        choice_usage = None
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict) and choice.get("finish_reason"):
                self.finished = True
                if isinstance(choice.get("usage"), dict):
                    choice_usage = choice["usage"]
        usage = chunk.get("usage")
        if not isinstance(usage, dict) and choice_usage is not None:
            usage = choice_usage  # Moonshot/Kimi: the final usage sits in the finishing choice, not at the top
        if isinstance(usage, dict):
            self.usage = Usage.from_openai(usage)
            chunk["usage"] = with_raw_usage(usage)
        return [chunk]

    def close(self) -> list[dict[str, Any]]:
        """Called at the upstream's EOF; OpenAI-format streams need nothing more."""
        return []


def build_models_request(target: Target) -> UpstreamRequest:
    headers = auth_headers(target)
    headers.pop("content-type")
    return UpstreamRequest("GET", f"{target.base_url}/models", headers)


def parse_models(raw: bytes) -> list[str]:
    data = orjson.loads(raw)
    items = data.get("data") if isinstance(data, dict) else data
    if isinstance(data, dict) and items is None:
        items = data.get("models")  # Ollama's native listing, should a base URL point there
    ids = []
    for item in items or []:
        if isinstance(item, dict):
            model_id = item.get("id") or item.get("name") or item.get("model")
            if isinstance(model_id, str):
                ids.append(model_id)
    return ids


def build_embeddings_request(body: dict[str, Any], target: Target, model: str) -> UpstreamRequest:
    body = dict(body)
    body.pop("provider", None)
    body["model"] = model
    return UpstreamRequest("POST", f"{target.base_url}/embeddings", auth_headers(target), orjson.dumps(body))


def parse_embeddings_response(raw: bytes, model: str,
                              encoding_format: str | None = None) -> tuple[dict[str, Any], Usage | None]:
    """The upstream already encoded the vectors as asked (`encoding_format` went with the body)."""
    data = orjson.loads(raw)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise ValueError("an embeddings response needs a 'data' array")
    return data, Usage.from_openai(data.get("usage"))
