"""The usage event: what one /v1 request leaves on the usage stream, as one type.

The gateway builds it (gomodel/gateway/usage_record.py) and `encode`s it; the drain, the reports,
/v1/usage, the dashboard and the live feed `decode` it. `decode` is lenient on purpose: an entry
written by an older gateway, or with odd values, still bills what it can (text is cut to the
column's length, counts are clamped to 0…2³¹-1, a missing time is now); only an entry without a
usable request_id is refused (ValueError), and the drain dead-letters it.

`StreamEvent` (not `models.UsageEvent`, the row the drain stores) is one entry of the usage stream.
The wire is the JSON object of the fields below, by these names (streams written before this type
existed decode the same).
"""

import dataclasses
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

MAX_INT = 2**31 - 1
MAX_COST = Decimal(10) ** 9  # USD per event; the column holds 20 digits, 10 after the point
COST_SOURCES = ("upstream", "price_db", "admin", "unknown", "cache")  # accounting.models.CostSource's values
USAGE_SOURCES = ("reported", "estimated", "none")  # accounting.models.UsageSource's values
CACHE_RESULTS = ("exact", "semantic")  # accounting.models.CacheResult's values (but "")
TOKEN_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "reasoning_tokens")
# Text fields and the length of the column each is stored in.
TEXT_LIMITS = {"request_id": 64, "tenant": 64, "api_key_prefix": 32, "provider": 64, "provider_type": 32,
               "provider_key": 64, "requested_model": 255, "model": 255, "endpoint": 64, "error_type": 64,
               "user": 64}
MAX_LABELS, MAX_LABEL_LENGTH = 16, 64  # accounting/labels.py's bounds (the gateway refuses more with a 400)


@dataclass(slots=True)
class StreamEvent:
    request_id: str
    ts: float = 0.0  # Unix time the request ended
    tenant_id: int | None = None
    tenant: str | None = ""  # the slug, kept should the tenant be deleted (None: the master key; decoded as "")
    api_key_id: int | None = None
    api_key_prefix: str = ""
    provider_id: int | None = None
    provider: str = ""  # the provider config's name
    provider_type: str = ""
    requested_model: str = ""  # as the client sent it (an alias, a provider/model pair…)
    model: str = ""  # what the upstream was asked for
    endpoint: str = ""  # "/v1/chat/completions", "/v1/embeddings"
    status: int = 0
    error_type: str | None = None
    stream: bool = False
    latency_ms: float | None = None
    ttft_ms: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    usage_source: str = "reported"
    attempts: list = field(default_factory=list)  # each upstream try: provider, model, status, error
    cache_write_tokens: int = 0  # prompt tokens written to a cache (Anthropic), inside prompt_tokens
    reported_cost: str | None = None  # USD the upstream said it charged (OpenRouter, xAI), a decimal string
    # Priced by the gateway (budgeted requests; accounting/budgets/); otherwise the drain prices it.
    cost: str | None = None  # USD, a decimal string
    cost_source: str | None = None  # accounting.prices.COST_SOURCES
    cost_e10: int = 0  # the same cost in 1e-10 USD: what went into the budget counters' `pending`
    budget_keys: list = field(default_factory=list)  # those counters' names
    # A stream cut without reported usage, for a model with a tokenizer: the bounded text the token
    # counts are taken from off the event loop (accounting/usage/estimate.py, `settle`); the counts above
    # are characters/4 until then.
    estimate: dict | None = None
    # Answered from the response cache ("exact" or "semantic"; None: it was not): cost "0" (cost_source "cache"),
    # tokens as served; the drain prices those tokens as the provider would have into `cost_saved_usd` (USD, a
    # decimal string).
    cache: str | None = None
    cost_saved_usd: str | None = None
    # Attribution (accounting/labels.py): the key's labels merged with the request's, and the end user ("": none).
    labels: dict[str, str] = field(default_factory=dict)
    user: str = ""
    provider_key: str = ""  # the label of the provider config's key that served it (its key pool); never the key
    # What a media call consumed besides tokens (priced per unit: accounting/prices/units.py): images generated or
    # edited, seconds of audio transcribed or translated (as the answer said), characters of speech input.
    images: int = 0
    audio_seconds: float = 0.0
    characters: int = 0

    @property
    def created_at(self) -> datetime:
        return datetime.fromtimestamp(self.ts, timezone.utc)

    @property
    def day(self) -> date:
        return self.created_at.date()

    def replace(self, **changes) -> "StreamEvent":
        return dataclasses.replace(self, **changes)


def encode(event: "StreamEvent") -> bytes:
    return orjson.dumps(event)


def decode(raw: bytes | str | dict) -> StreamEvent:
    """A stream entry (its JSON, or the parsed object) as a StreamEvent; ValueError when it cannot be billed."""
    if not isinstance(raw, dict):
        raw = orjson.loads(raw)  # orjson.JSONDecodeError is a ValueError
    if not isinstance(raw, dict):
        raise ValueError("not an object")
    request_id = raw.get("request_id")
    if not isinstance(request_id, str) or not request_id:
        raise ValueError("no request_id")
    if len(request_id) > TEXT_LIMITS["request_id"]:
        raise ValueError("request_id too long")
    text: dict[str, Any] = {name: _text(raw.get(name), limit) for name, limit in TEXT_LIMITS.items()}
    error_type = raw.get("error_type")
    text["error_type"] = error_type[:TEXT_LIMITS["error_type"]] if isinstance(error_type, str) else None
    counts: dict[str, Any] = {name: _count(raw.get(name)) for name in TOKEN_FIELDS}
    if not counts["total_tokens"]:
        counts["total_tokens"] = min(MAX_INT, counts["prompt_tokens"] + counts["completion_tokens"])
    ts = _optional_float(raw.get("ts"))
    if ts is None or ts <= 0:
        ts = time.time()
    status = raw.get("status")
    source = raw.get("usage_source")
    attempts = raw.get("attempts")
    cost_source = raw.get("cost_source")
    cost_source = cost_source if cost_source in COST_SOURCES else None
    cost = _decimal(raw.get("cost")) if cost_source not in (None, "unknown") else None
    names = raw.get("budget_keys")
    names = [n for n in names[:4] if isinstance(n, str) and len(n) < 256] if isinstance(names, list) else []
    e10 = raw.get("cost_e10")
    return StreamEvent(
        **text, **counts, ts=ts, cache_write_tokens=_count(raw.get("cache_write_tokens")),
        reported_cost=_decimal(raw.get("reported_cost")), cost=cost, cost_source=cost_source,
        cost_e10=e10 if names and isinstance(e10, int) and not isinstance(e10, bool) and 0 <= e10 < 2**62 else 0,
        budget_keys=names if isinstance(e10, int) else [],
        tenant_id=_optional_id(raw.get("tenant_id")), api_key_id=_optional_id(raw.get("api_key_id")),
        provider_id=_optional_id(raw.get("provider_id")),
        status=status if isinstance(status, int) and not isinstance(status, bool) and 0 <= status < 1000 else 0,
        stream=raw.get("stream") is True,
        latency_ms=_optional_float(raw.get("latency_ms")), ttft_ms=_optional_float(raw.get("ttft_ms")),
        usage_source=source if source in USAGE_SOURCES else "reported",
        attempts=attempts if isinstance(attempts, list) else [],
        estimate=estimate if isinstance(estimate := raw.get("estimate"), dict) and source == "estimated" else None,
        cache=raw.get("cache") if raw.get("cache") in CACHE_RESULTS else None,
        cost_saved_usd=_decimal(raw.get("cost_saved_usd")), labels=_labels(raw.get("labels")),
        images=_count(raw.get("images")), characters=_count(raw.get("characters")),
        audio_seconds=_seconds(raw.get("audio_seconds")),
    )


def _labels(value) -> dict[str, str]:
    """What the gateway wrote (it checked the bounds); anything else is dropped, never a reason to lose an event."""
    if not isinstance(value, dict):
        return {}
    labels = {}
    for name, text in value.items():
        if isinstance(name, str) and name and isinstance(text, str):
            labels[name[:MAX_LABEL_LENGTH]] = text[:MAX_LABEL_LENGTH]
            if len(labels) == MAX_LABELS:
                break
    return labels


def _decimal(value) -> str | None:
    """A non-negative USD amount as a decimal string, or None."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        return None
    return value if amount.is_finite() and 0 <= amount < MAX_COST else None


def _text(value, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _count(value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    return max(0, min(int(value), MAX_INT))


def _seconds(value) -> float:
    """A duration in seconds: finite, 0…10⁹ (else 0)."""
    seconds = _optional_float(value)
    return seconds if seconds is not None and 0 < seconds < 1e9 else 0.0


def _optional_id(value) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _optional_float(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
