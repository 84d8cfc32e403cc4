"""The bundled default price table: USD per million tokens for common models of the seed providers.

Source: each provider's public pricing page (OpenAI, Anthropic, Google Gemini API, Groq, DeepSeek,
xAI, Z.ai, MiniMax, Alibaba Model Studio international), as published in 2025 (last reviewed
2025-11). The figures were transcribed, not fetched by this code, so CHECK THEM BEFORE INVOICING:
prices change, and the admin (Accounting → Model prices) is where to correct them or add a row with
a later `valid_from`. One cross-check is built in: the grok-3-mini row reproduces, to the 1e-10 USD,
the `cost_in_usd_ticks` xAI itself returned in tests/fixtures/recorded/xai/chat_completion.json.

Columns: provider type, model pattern (exact id or glob), input, cached input (None: input price),
output, reasoning (None: output price). Simplifications: the standard tier only (no batch/flex/priority
discounts); Gemini and Claude long-context tiers (> 200k prompt tokens) and cache *writes* are not
modelled, and Anthropic/Gemini "cached input" is the cache-read price. Providers without a row here
(OpenRouter, Xiaomi, OpenCode Go, Oracle, Ollama) get a null cost until an admin adds one.

`load_default_prices()` inserts the rows that are missing (by provider, pattern, valid_from); it runs
as a data migration and as `manage.py load_default_prices`. An edited row is never overwritten.
"""

from datetime import datetime, timezone

VALID_FROM = datetime(2025, 1, 1, tzinfo=timezone.utc)
NOTE = "bundled default (provider pricing page, 2025; reviewed 2025-11)"

# provider, pattern, input, cached input, output, reasoning
DEFAULT_PRICES: list[tuple[str, str, str, str | None, str, str | None]] = [
    # OpenAI (reasoning tokens are inside completion_tokens and billed as output)
    ("openai", "gpt-5", "1.25", "0.125", "10.00", None),
    ("openai", "gpt-5-2*", "1.25", "0.125", "10.00", None),
    ("openai", "gpt-5-mini*", "0.25", "0.025", "2.00", None),
    ("openai", "gpt-5-nano*", "0.05", "0.005", "0.40", None),
    ("openai", "gpt-4.1", "2.00", "0.50", "8.00", None),
    ("openai", "gpt-4.1-2*", "2.00", "0.50", "8.00", None),
    ("openai", "gpt-4.1-mini*", "0.40", "0.10", "1.60", None),
    ("openai", "gpt-4.1-nano*", "0.10", "0.025", "0.40", None),
    ("openai", "gpt-4o", "2.50", "1.25", "10.00", None),
    ("openai", "gpt-4o-2*", "2.50", "1.25", "10.00", None),
    ("openai", "chatgpt-4o-latest", "5.00", None, "15.00", None),
    ("openai", "gpt-4o-mini*", "0.15", "0.075", "0.60", None),
    ("openai", "gpt-4-turbo*", "10.00", None, "30.00", None),
    ("openai", "gpt-3.5-turbo*", "0.50", None, "1.50", None),
    ("openai", "o1", "15.00", "7.50", "60.00", None),
    ("openai", "o1-2*", "15.00", "7.50", "60.00", None),
    ("openai", "o1-mini*", "1.10", "0.55", "4.40", None),
    ("openai", "o3", "2.00", "0.50", "8.00", None),
    ("openai", "o3-2*", "2.00", "0.50", "8.00", None),
    ("openai", "o3-mini*", "1.10", "0.55", "4.40", None),
    ("openai", "o4-mini*", "1.10", "0.275", "4.40", None),
    ("openai", "text-embedding-3-small", "0.02", None, "0", None),
    ("openai", "text-embedding-3-large", "0.13", None, "0", None),
    ("openai", "text-embedding-ada-002", "0.10", None, "0", None),
    # Anthropic (cached = cache read)
    ("anthropic", "claude-opus-4-5*", "5.00", "0.50", "25.00", None),
    ("anthropic", "claude-opus-4*", "15.00", "1.50", "75.00", None),
    ("anthropic", "claude-sonnet-4*", "3.00", "0.30", "15.00", None),
    ("anthropic", "claude-3-7-sonnet*", "3.00", "0.30", "15.00", None),
    ("anthropic", "claude-3-5-sonnet*", "3.00", "0.30", "15.00", None),
    ("anthropic", "claude-haiku-4-5*", "1.00", "0.10", "5.00", None),
    ("anthropic", "claude-3-5-haiku*", "0.80", "0.08", "4.00", None),
    ("anthropic", "claude-3-haiku*", "0.25", "0.03", "1.25", None),
    # Google Gemini API (prompts up to 200k tokens; thinking tokens billed as output)
    ("gemini", "gemini-2.5-pro*", "1.25", "0.31", "10.00", None),
    ("gemini", "gemini-2.5-flash", "0.30", "0.075", "2.50", None),
    ("gemini", "gemini-2.5-flash-0*", "0.30", "0.075", "2.50", None),
    ("gemini", "gemini-2.5-flash-preview*", "0.30", "0.075", "2.50", None),
    ("gemini", "gemini-2.5-flash-lite*", "0.10", "0.025", "0.40", None),
    ("gemini", "gemini-2.0-flash", "0.10", "0.025", "0.40", None),
    ("gemini", "gemini-2.0-flash-0*", "0.10", "0.025", "0.40", None),
    ("gemini", "gemini-2.0-flash-lite*", "0.075", None, "0.30", None),
    # Groq
    ("groq", "llama-3.3-70b-versatile", "0.59", None, "0.79", None),
    ("groq", "llama-3.1-8b-instant", "0.05", None, "0.08", None),
    ("groq", "openai/gpt-oss-120b", "0.15", None, "0.75", None),
    ("groq", "openai/gpt-oss-20b", "0.10", None, "0.50", None),
    ("groq", "qwen/qwen3-32b", "0.29", None, "0.59", None),
    ("groq", "moonshotai/kimi-k2-instruct*", "1.00", None, "3.00", None),
    # DeepSeek (V3.2 prices from 2025-09-29; cached = cache hit)
    ("deepseek", "deepseek-chat", "0.28", "0.028", "0.42", None),
    ("deepseek", "deepseek-reasoner", "0.28", "0.028", "0.42", None),
    # xAI (reasoning tokens are reported OUTSIDE completion_tokens and billed at the output price)
    ("xai", "grok-4", "3.00", "0.75", "15.00", None),
    ("xai", "grok-4-0*", "3.00", "0.75", "15.00", None),
    ("xai", "grok-4-fast*", "0.20", "0.05", "0.50", None),
    ("xai", "grok-4-1-fast*", "0.20", "0.05", "0.50", None),
    ("xai", "grok-code-fast*", "0.20", "0.02", "1.50", None),
    ("xai", "grok-3", "3.00", "0.75", "15.00", None),
    ("xai", "grok-3-mini*", "0.30", "0.075", "0.50", None),
    # Z.ai
    ("zai", "glm-4.6", "0.60", "0.11", "2.20", None),
    ("zai", "glm-4.5", "0.60", "0.11", "2.20", None),
    ("zai", "glm-4.5-air", "0.20", "0.03", "1.10", None),
    # MiniMax
    ("minimax", "MiniMax-M2", "0.30", "0.03", "1.20", None),
    # Alibaba Model Studio (international, lowest tier)
    ("bailian", "qwen-max*", "1.60", None, "6.40", None),
    ("bailian", "qwen-plus*", "0.40", None, "1.20", None),
    ("bailian", "qwen-turbo*", "0.05", None, "0.20", None),
    ("bailian", "qwen-flash*", "0.05", None, "0.40", None),
]


def load_default_prices(model_price=None) -> int:
    """Insert the default rows that are missing; returns how many were added."""
    from decimal import Decimal

    if model_price is None:
        from .models import ModelPrice as model_price

    existing = set(model_price.objects.filter(valid_from=VALID_FROM).values_list("provider", "model_pattern"))
    rows = [
        model_price(provider=provider, model_pattern=pattern, input_per_million=Decimal(inp),
                    cached_input_per_million=Decimal(cached) if cached is not None else None,
                    output_per_million=Decimal(out),
                    reasoning_per_million=Decimal(reasoning) if reasoning is not None else None,
                    valid_from=VALID_FROM, note=NOTE)
        for provider, pattern, inp, cached, out, reasoning in DEFAULT_PRICES
        if (provider, pattern) not in existing
    ]
    model_price.objects.bulk_create(rows)
    return len(rows)
