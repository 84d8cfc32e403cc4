"""What every adapter shares: the upstream request, normalised usage, SSE framing, upstream errors."""

import math
from dataclasses import dataclass, field
from decimal import Decimal

import orjson


@dataclass(frozen=True)
class Target:
    """A provider config as the hot path sees it: plain data, key already decrypted."""

    id: int
    name: str
    provider_type: str
    wire: str
    base_url: str
    api_key: str
    extra_models: tuple[str, ...] = ()


@dataclass
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None = None


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0  # cache reads, inside prompt_tokens
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0  # prompt tokens written to the cache (Anthropic), inside prompt_tokens
    reported_cost: str | None = None  # USD as a decimal string, when the upstream itself says what it charged

    @classmethod
    def from_openai(cls, usage: dict | None) -> "Usage | None":
        if not isinstance(usage, dict):
            return None
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        prompt = _int(usage.get("prompt_tokens"))
        completion = _int(usage.get("completion_tokens"))
        return cls(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=_int(usage.get("total_tokens")) or prompt + completion,
            cached_tokens=_int(prompt_details.get("cached_tokens")) if isinstance(prompt_details, dict) else 0,
            reasoning_tokens=(_int(completion_details.get("reasoning_tokens"))
                              if isinstance(completion_details, dict) else 0),
            reported_cost=_reported_cost(usage),
        )


def _reported_cost(usage: dict) -> str | None:
    """OpenRouter's `usage.cost` (USD) or xAI's `cost_in_usd_ticks` (1 tick = 1e-10 USD)."""
    ticks = usage.get("cost_in_usd_ticks")
    if isinstance(ticks, int) and not isinstance(ticks, bool) and ticks >= 0:
        return str(Decimal(ticks).scaleb(-10))
    cost = usage.get("cost")
    if isinstance(cost, (int, float)) and not isinstance(cost, bool) and cost >= 0 and math.isfinite(cost):
        return str(Decimal(str(cost)))
    return None


def _int(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass
class UpstreamError(Exception):
    """A non-2xx answer from the upstream, with the message it gave."""

    status: int
    message: str
    param: str | None = None
    code: str | None = None
    retry_after: str | None = None


@dataclass
class StreamError(Exception):
    """The upstream reported an error inside a stream that had already started."""

    message: str
    code: str | None = None
    details: dict = field(default_factory=dict)


def error_message(raw: bytes, status: int) -> tuple[str, str | None, str | None]:
    """Pull (message, param, code) out of an upstream error body, whatever its dialect."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        text = raw.decode("utf-8", "replace").strip()
        return (text[:500] or f"upstream answered HTTP {status}"), None, None
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        message = err.get("message") or err.get("type") or f"upstream answered HTTP {status}"
        param = err.get("param") if isinstance(err.get("param"), str) else None
        # OpenAI: error.code; Gemini: error.status ("INVALID_ARGUMENT"), error.code is the HTTP status;
        # Anthropic: {"type": "error", "error": {"type": "overloaded_error", ...}}.
        code = err.get("code")
        if not isinstance(code, str):
            code = err.get("status") if isinstance(err.get("status"), str) else None
        if code is None and data.get("type") == "error" and isinstance(err.get("type"), str):
            code = err["type"]
        return str(message), param, code
    if isinstance(err, str):
        return err, None, None
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return data["message"], None, None
    return f"upstream answered HTTP {status}", None, None


class SSEDecoder:
    """Splits a byte stream into server-sent events: (event name or None, data bytes)."""

    __slots__ = ("_buffer", "_event", "_data")

    def __init__(self):
        self._buffer = b""
        self._event = None
        self._data = []

    def feed(self, chunk: bytes) -> list[tuple[str | None, bytes]]:
        events = []
        buffer = self._buffer + chunk
        lines = buffer.split(b"\n")
        self._buffer = lines.pop()
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if self._data:
                    events.append((self._event, b"\n".join(self._data)))
                self._event = None
                self._data = []
            elif line.startswith(b"data:"):
                self._data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif line.startswith(b"event:"):
                self._event = line[6:].strip().decode()
            # comments (":") and other fields (id, retry) are of no use to a relay
        return events

    def close(self) -> list[tuple[str | None, bytes]]:
        """Flush a final event that had no blank line after it."""
        events = self.feed(b"\n\n") if (self._buffer or self._data) else []
        return events
