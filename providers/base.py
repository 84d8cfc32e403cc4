"""What every adapter shares: the upstream request, normalised usage, SSE framing, upstream errors."""

import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

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
    key_label: str = ""  # which key of the config's pool `api_key` is (usage names it; never the key)
    quota: "Quota | None" = None  # the provider account's quotas (None: none, and no Redis call for them)


QUOTA_KEYS = ("rpm", "tpm", "concurrency")
QUOTA_MAX = 2**31 - 1


@dataclass(frozen=True)
class Quota:
    """A provider config's quotas, shared by every tenant: the config's own, and per model (model, rpm, tpm,
    concurrency). None: no quota of that kind."""

    rpm: int | None
    tpm: int | None
    concurrency: int | None
    models: tuple[tuple[str, int | None, int | None, int | None], ...] = ()

    @property
    def own(self) -> bool:
        return self.rpm is not None or self.tpm is not None or self.concurrency is not None

    def of_model(self, model: str) -> tuple[str, int | None, int | None, int | None] | None:
        for entry in self.models:
            if entry[0] == model:
                return entry
        return None


def parse_model_quotas(value: object) -> tuple[tuple[str, int | None, int | None, int | None], ...]:
    """`{"gpt-4o": {"rpm": 500, "tpm": 30000, "concurrency": 20}}` as sorted tuples; ValueError names what is wrong."""
    if value in (None, ""):
        return ()
    if not isinstance(value, dict):
        raise ValueError('must be an object: {"model": {"rpm": N, "tpm": N, "concurrency": N}}')
    out = []
    for model, limits in value.items():
        if not isinstance(model, str) or not model.strip() or len(model) > 200 or any(c.isspace() for c in model):
            raise ValueError(f"{model!r} is not a model id")
        if not isinstance(limits, dict) or not limits or set(limits) - set(QUOTA_KEYS):
            raise ValueError(f"the quotas of {model!r} must be an object with some of rpm, tpm, concurrency")
        numbers = []
        for name in QUOTA_KEYS:
            number = limits.get(name)
            if number is not None and (not isinstance(number, int) or isinstance(number, bool)
                                       or not 1 <= number <= QUOTA_MAX):
                raise ValueError(f"{model!r} {name} must be a whole number >= 1 or null")
            numbers.append(number)
        if any(n is not None for n in numbers):
            out.append((model, numbers[0], numbers[1], numbers[2]))
    return tuple(sorted(out))


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
    def from_openai(cls, usage: dict[str, Any] | None) -> "Usage | None":
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


def _reported_cost(usage: dict[str, Any]) -> str | None:
    """OpenRouter's `usage.cost` (USD) or xAI's `cost_in_usd_ticks` (1 tick = 1e-10 USD)."""
    ticks = usage.get("cost_in_usd_ticks")
    if isinstance(ticks, int) and not isinstance(ticks, bool) and ticks >= 0:
        return str(Decimal(ticks).scaleb(-10))
    cost = usage.get("cost")
    if isinstance(cost, (int, float)) and not isinstance(cost, bool) and cost >= 0 and math.isfinite(cost):
        return str(Decimal(str(cost)))
    return None


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass
class UpstreamError(Exception):
    """A non-2xx answer from the upstream, with the message it gave."""

    status: int
    message: str
    param: str | None = None
    code: str | None = None


@dataclass
class StreamError(Exception):
    """The upstream reported an error inside a stream that had already started."""

    message: str
    code: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


REDACTED = "[redacted]"
# What looks like a credential in free text: an Authorization value, the usual API key shapes
# (sk-…, sk_…, gsk_…, xai-…, AIza…), and any long unbroken base64/hex-like run.
_CREDENTIALS = re.compile(
    r"\b(?:bearer|basic|token)\s+[^\s\"',;]+"
    r"|\b(?:sk|pk|rk|gsk|xai|api[-_]?key)[-_][A-Za-z0-9_\-]{8,}"
    r"|\bAIza[0-9A-Za-z_\-]{20,}"
    r"|[A-Za-z0-9+/_\-]{32,}={0,2}",
    re.IGNORECASE,
)


def scrub_secrets(text: str, api_key: str = "", base_url: str = "") -> str:
    """`text` from or about an upstream, fit to show someone else: without the provider's key, anything
    shaped like a credential, or the upstream's host name (the one scrubber; test-connection uses it too)."""
    if api_key:
        text = text.replace(api_key, REDACTED)
    text = _CREDENTIALS.sub(REDACTED, text)
    host = urlsplit(base_url).hostname if base_url else None
    if host:
        text = re.sub(re.escape(host), "[upstream host]", text, flags=re.IGNORECASE)
    return text


def error_message(raw: bytes, status: int, target: "Target | None" = None) -> tuple[str, str | None, str | None]:
    """Pull (message, param, code) out of an upstream error body, whatever its dialect. With `target`,
    the message is scrubbed of its key, credentials and host name (scrub_secrets) for showing on."""
    message, param, code = _error_parts(raw, status, target)
    if target is not None:
        message = scrub_secrets(message[:4000], target.api_key, target.base_url)[:500]
    return message, param, code


def _error_parts(raw: bytes, status: int, target: Target | None) -> tuple[str, str | None, str | None]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # Scrubbed (by the caller) before the cut to 500 characters, so no key is cut in half first.
        text = raw[:4000].decode("utf-8", "replace").strip()
        return (text if target is not None else text[:500]) or f"upstream answered HTTP {status}", None, None
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        message = err.get("message") or err.get("type") or f"upstream answered HTTP {status}"
        param = param if isinstance(param := err.get("param"), str) else None
        # OpenAI: error.code; Gemini: error.status ("INVALID_ARGUMENT"), error.code is the HTTP status;
        # Anthropic: {"type": "error", "error": {"type": "overloaded_error", ...}}.
        code = err.get("code")
        if not isinstance(code, str):
            code = code if isinstance(code := err.get("status"), str) else None
        if code is None and data.get("type") == "error" and isinstance(err.get("type"), str):
            code = err["type"]
        return str(message), param, code
    if isinstance(err, str):
        return err, None, None
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return data["message"], None, None
    return f"upstream answered HTTP {status}", None, None


_BLANK_RUNS = re.compile(rb"\n\n+")  # blank lines in a row: one is all they mean


class SSEDecoder:
    """Splits a byte stream into server-sent events: (event name or None, data bytes).

    Linear in the stream and bounded per call: the lines a chunk completes are split in C (`bytes.split`,
    after folding CRLF and runs of blank lines, which mean nothing more than one blank line), so the Python
    loop runs once per meaningful line, not once per byte of a flood of blank lines; a line or an event
    longer than `max_event` bytes is a StreamError rather than unbounded memory, checked before the event is
    joined. (What one call costs is bounded by the chunk it is fed: the gateway's upstream client hands a
    stream out in slices of at most 32 KiB, gomodel/gateway/upstream_client.)
    """

    __slots__ = ("_buffer", "_scanned", "_event", "_data", "_size", "_max")

    def __init__(self, max_event: int = 8 * 1024 * 1024):
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer known to hold no newline
        self._event: str | None = None
        self._data: list[bytes] = []
        self._size = 0  # bytes of data in the event being built
        self._max = max_event

    def feed(self, chunk: bytes) -> list[tuple[str | None, bytes]]:
        buffer = self._buffer
        buffer += chunk
        end = buffer.rfind(b"\n", self._scanned)
        if end < 0:
            self._scanned = len(buffer)
            if self._scanned > self._max:
                raise self._too_large()
            return []
        block = bytes(buffer[:end])
        del buffer[:end + 1]
        self._scanned = len(buffer)
        if self._scanned > self._max:
            raise self._too_large()
        if b"\r" in block:
            block = block.replace(b"\r\n", b"\n")
            if block.endswith(b"\r"):  # the CR of the CRLF that ended the block
                block = block[:-1]
        if b"\n\n\n" in block:
            block = _BLANK_RUNS.sub(b"\n\n", block)
        events: list[tuple[str | None, bytes]] = []
        data, size, limit = self._data, self._size, self._max
        for line in block.split(b"\n"):
            if not line:
                if data:
                    events.append((self._event, b"\n".join(data)))
                    data = []
                    size = 0
                self._event = None
            elif line.startswith(b"data:"):
                value = line[6:] if line[5:6] == b" " else line[5:]
                size += len(value) + 1
                if size > limit:
                    self._data, self._size = [], 0
                    raise self._too_large()
                data.append(value)
            elif line.startswith(b"event:"):
                self._event = line[6:].strip().decode()
            # comments (":") and other fields (id, retry) are of no use to a relay
        self._data, self._size = data, size
        return events

    def _too_large(self) -> StreamError:
        return StreamError(f"the upstream sent a stream event larger than {self._max} bytes",
                           code="upstream_response_too_large")

    def close(self) -> list[tuple[str | None, bytes]]:
        """Flush a final event that had no blank line after it."""
        events = self.feed(b"\n\n") if (self._buffer or self._data) else []
        return events
