"""Bundled prices for the providers the genai-prices database does not cover (Alibaba Model Studio),
USD per million tokens. Every other provider is priced by genai-prices (accounting/prices/book.py); an admin
`ModelPrice` row overrides either.

Source: Alibaba Model Studio's international pricing page, lowest tier, as published in 2025
(transcribed, not fetched: CHECK BEFORE INVOICING; correct them in the admin, Accounting → Model prices).
Xiaomi, OpenCode Go, Oracle and Ollama have no default price: their cost is null until one is added.

`load_default_prices()` inserts the rows that are missing (by provider, pattern, valid_from); it runs
as a data migration and as `manage.py load_default_prices`. An edited row is never overwritten.
"""

from datetime import datetime, timezone

VALID_FROM = datetime(2025, 1, 1, tzinfo=timezone.utc)
NOTE = "bundled default (provider pricing page, 2025; reviewed 2025-11)"

# provider, pattern, input, cached input, output, reasoning
DEFAULT_PRICES: list[tuple[str, str, str, str | None, str, str | None]] = [
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
        from ..models import ModelPrice as model_price

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
