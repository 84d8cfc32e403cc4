"""Provider-native passthrough: `ANY /p/{provider}/{path…}` goes to that provider config's base URL as it
came (method, path, query, body and the provider's own headers), with the tenant's gateway key replaced by
the provider's credential. Governed and billed like every call — it is the one pipeline with this plug-in:
allow-lists (the provider, and the model when the body names one), budgets, rate limits, the deadline and
body caps, scrubbed errors. The usage is read from the answer in the provider's own format (the JSON
`usage` member, Anthropic's, Gemini's `usageMetadata`, or their SSE events); an answer without any is one
usage event with `usage_source=none`."""

from collections.abc import Awaitable, Callable
from typing import Any, Self
from urllib.parse import quote

import orjson
from django.conf import settings

from accounting.usage.estimate import approximate_text_tokens
from providers.adapter_protocol import ChatAdapter
from providers.anthropic.request import auth_headers as anthropic_auth
from providers.anthropic.response import convert_usage
from providers.base import StreamError, Target, UpstreamRequest, Usage
from providers.gemini.request import auth_headers as gemini_auth
from providers.gemini.response import usage_from as gemini_usage
from providers.openai_compat.adapter import auth_headers as openai_auth

from ..errors import NOT_FOUND, GatewayError
from ..http import Request
from ..json_body import parse_json_object
from ..pipeline.run import run
from ..upstream_client import UpstreamResponse
from ..usage_record import UsageRecord
from .base import BaseExchange, StreamWriterBase

PREFIX = "/p/"
# The client's headers that reach the provider (besides the body's content-type): its own protocol's.
FORWARDED = (b"content-type", b"accept", b"anthropic-version", b"anthropic-beta", b"openai-beta")
AUTH = {"openai_compat": openai_auth, "anthropic": anthropic_auth, "gemini": gemini_auth}


def enabled(provider: str) -> bool:
    allowed = settings.PASSTHROUGH_PROVIDERS
    return allowed == "*" or provider in allowed


class PassthroughExchange(BaseExchange):
    __slots__ = ("provider", "path", "query", "raw", "method", "headers", "endpoint")
    # Set by `receive`, which makes the instance without __init__ (the slots above).
    provider: str
    path: str
    query: str
    raw: bytes
    method: str
    headers: dict[str, str]

    @staticmethod
    def validate(body: dict[str, Any]) -> None:
        return None  # the provider validates its own format

    @classmethod
    async def receive(cls, req: Request) -> Self:
        provider, _, path = req.path[len(PREFIX):].partition("/")
        if not provider or not enabled(provider):
            raise GatewayError(404, NOT_FOUND, f"No passthrough route for provider '{provider[:64]}'.",
                               code="route_not_found")
        raw = await req.read_body(settings.BODY_SIZE_LIMIT)
        content_type = (req.header(b"content-type") or "").lower()
        body = parse_json_object(raw) if raw.strip() and "json" in content_type else {}
        model = body.get("model") if isinstance(body.get("model"), str) else _model_in_path(path)
        exchange = cls.__new__(cls)
        exchange.req = req
        exchange.body = body
        exchange.model = model
        exchange.provider_hint = provider
        exchange.provider = provider
        exchange.path = path
        exchange.query = req.scope.get("query_string", b"").decode("latin-1")
        exchange.raw = raw
        exchange.method = req.method
        exchange.headers = {name.decode(): value.decode("latin-1") for name in FORWARDED
                            if (value := req.headers.get(name)) is not None}
        exchange.stream = body.get("stream") is True or ":streamGenerateContent" in path or "alt=sse" in exchange.query
        exchange.endpoint = PREFIX + provider
        exchange._prompt = None
        exchange._prompt_tokens = None
        return exchange

    def messages(self) -> list[dict[str, Any]]:
        """The body's text as the prompt of an estimate: used only for a stream cut or hung up after text
        was relayed (an answer without usage and without relayed text is billed as none)."""
        return [{"role": "user", "content": self.raw.decode("utf-8", "replace")}] if self.raw else []

    def prompt_tokens(self) -> int:
        """What the budget and TPM reserve for the input: the body's size in characters / 4."""
        if self._prompt_tokens is None:
            self._prompt_tokens = approximate_text_tokens(self.raw.decode("utf-8", "replace")) if self.raw else 0
        return self._prompt_tokens

    def candidates(self, chain: list[tuple[Target, str]]) -> list[tuple[Target, str]]:
        return chain[:1]  # the provider the path names, no failover: the body is in its own format

    def build(self, adapter: ChatAdapter, target: Target, model: str) -> UpstreamRequest:
        base = target.base_url.rstrip("/")
        path = self.path
        version = base.rsplit("/", 1)[-1]
        if version.startswith("v") and path.split("/", 1)[0] == version:  # "v1/…" on a base ending in /v1
            path = path.split("/", 1)[1] if "/" in path else ""
        url = base + "/" + quote(path, safe="/:@-._~!$&'()*+,;=")
        if self.query:
            url += "?" + self.query
        # The provider's credential; the client's never goes on (FORWARDED names none of its headers).
        headers = {**AUTH[target.wire](target), **self.headers}
        return UpstreamRequest(self.method, url, headers, self.raw or None)

    def answer_headers(self, response: UpstreamResponse) -> list[tuple[bytes, bytes]]:
        content_type = response.headers.get("content-type")
        return [(b"content-type", content_type.encode("latin-1"))] if content_type else []

    def read(self, adapter: ChatAdapter, record: UsageRecord, content: bytes) -> tuple[bytes, None]:
        record.estimate_missing = False
        try:
            data = orjson.loads(content) if content else None
        except orjson.JSONDecodeError:
            data = None  # not JSON (audio, a file): nothing says what it cost
        if isinstance(data, dict):
            record.usage = usage_in(record.target.wire, data, None)
        return content, None

    def writer(self, adapter: ChatAdapter, record: UsageRecord) -> "RawEvents":
        record.estimate_missing = False
        return RawEvents(UsageSniffer(record.target.wire), record)


def _model_in_path(path: str) -> str:
    """Gemini names the model in the path: `v1beta/models/gemini-2.5-flash:generateContent`."""
    parts = path.split("/")
    if "models" in parts:
        index = parts.index("models")
        if index + 1 < len(parts):
            return parts[index + 1].split(":", 1)[0]
    return ""


def usage_in(wire: str, data: dict[str, Any], previous: Usage | None) -> Usage | None:
    """The usage a provider's JSON (an answer or one stream event) reports, in its own format."""
    if wire == "gemini":
        found = gemini_usage(data.get("usageMetadata"))[0] if isinstance(data.get("usageMetadata"), dict) else None
        return found or previous
    if wire == "anthropic":
        message = data["message"] if isinstance(data.get("message"), dict) else data
        raw = message.get("usage") if isinstance(message.get("usage"), dict) else data.get("usage")
        if not isinstance(raw, dict):
            return previous
        usage = convert_usage(raw)[1]
        if previous is not None and data.get("type") == "message_delta":  # the output count comes last
            usage = Usage(prompt_tokens=previous.prompt_tokens, completion_tokens=usage.completion_tokens,
                          total_tokens=previous.prompt_tokens + usage.completion_tokens,
                          cached_tokens=previous.cached_tokens, cache_write_tokens=previous.cache_write_tokens,
                          reasoning_tokens=usage.reasoning_tokens)
        return usage
    response = data.get("response")  # OpenAI's Responses events carry it in the terminal response
    raw = data.get("usage") if "usage" in data else response.get("usage") if isinstance(response, dict) else None
    if isinstance(raw, dict) and "input_tokens" in raw and "prompt_tokens" not in raw:
        raw = {"prompt_tokens": raw.get("input_tokens"), "completion_tokens": raw.get("output_tokens"),
               "total_tokens": raw.get("total_tokens"), "prompt_tokens_details": raw.get("input_tokens_details"),
               "completion_tokens_details": raw.get("output_tokens_details")}
    return Usage.from_openai(raw) or previous


class UsageSniffer:
    """Reads a native stream on the side: its usage (in the provider's format) and the text it carried (for
    the estimate of a stream cut before its usage came)."""

    __slots__ = ("wire", "usage", "complete")

    def __init__(self, wire: str) -> None:
        self.wire = wire
        self.usage: Usage | None = None
        self.complete = True  # the gateway does not know the protocol's end: the upstream's end is it

    def feed(self, record: UsageRecord, data: bytes) -> None:
        if data == b"[DONE]" or not data.startswith(b"{"):
            return
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(event, dict):
            return
        error = event.get("error")
        if error is not None:  # the provider's own error event: never relayed as it came (the relay scrubs it)
            message = error.get("message") if isinstance(error, dict) else error
            code = error.get("type") or error.get("code") if isinstance(error, dict) else None
            raise StreamError(str(message or "upstream stream error"), code=code if isinstance(code, str) else None)
        self.usage = usage_in(self.wire, event, self.usage)
        if isinstance(event.get("choices"), list):
            record.relay(event)
        delta = event.get("delta")
        if isinstance(delta, dict) and isinstance(delta.get("text"), str):
            record.relay_text(delta["text"])
        elif isinstance(delta, str):
            record.relay_text(delta)
        for candidate in event.get("candidates") or ():
            content = candidate.get("content") if isinstance(candidate, dict) else None
            for part in (content.get("parts") or ()) if isinstance(content, dict) else ():
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    record.relay_text(part["text"])


class RawEvents(StreamWriterBase[UsageSniffer]):
    """The provider's events as they came, re-framed; a stream the gateway ends gets an `error` event in
    the gateway's envelope."""

    __slots__ = ()

    def feed(self, event: str | None, data: bytes) -> bytes:
        self.parser.feed(self.record, data)
        lines = b"".join(b"data: " + line + b"\n" for line in data.split(b"\n"))
        return (b"event: " + event.encode() + b"\n" if event else b"") + lines + b"\n"

    def finish(self) -> bytes:
        return b""

    def fail(self, message: str, code: str, kind: str) -> bytes:
        return b"event: error\ndata: " + orjson.dumps(
            {"error": {"type": kind, "message": message, "param": None, "code": code}}) + b"\n\n"


async def _passthrough(req: Request) -> None:
    await run(req, PassthroughExchange)


Handler = Callable[[Request], Awaitable[None]]
ROUTE: dict[str, Handler] = dict.fromkeys(("GET", "POST", "PUT", "PATCH", "DELETE"), _passthrough)


def methods(rest: str) -> dict[str, Handler]:
    """The app's prefix route: every method of /p/… is the pipeline with this plug-in."""
    return ROUTE

