"""Helpers for the admin and dashboard tests: usage rows stored by the drain's own code."""

import itertools
from datetime import datetime, timezone

import pytest

from accounting.prices.book import PriceBook
from accounting.prices.defaults import load_default_prices
from accounting.usage.drain import store
from accounting.usage.events import StreamEvent

_ids = itertools.count(1)


def event(tenant=None, key=None, *, when: datetime, model="gpt-4o-mini", provider="openai", provider_type="openai",
          status=200, prompt=10, completion=5, cached=0, latency=100.0, ttft=None, stream=False, request_id=None):
    """A usage event as the gateway emits it."""
    return StreamEvent(
        request_id=request_id or f"req-dash-{next(_ids)}", ts=when.timestamp(),
        tenant_id=tenant.id if tenant else None, tenant=tenant.slug if tenant else "",
        api_key_id=key.id if key else None, api_key_prefix=key.prefix if key else "",
        provider_id=None, provider=provider, provider_type=provider_type, requested_model=model,
        model=model, endpoint="/v1/chat/completions", status=status,
        error_type=None if status == 200 else "upstream_error", stream=stream, latency_ms=latency,
        ttft_ms=ttft, prompt_tokens=prompt, completion_tokens=completion,
        total_tokens=prompt + completion, cached_tokens=cached, reasoning_tokens=0,
        usage_source="reported" if status == 200 else "none",
    )


def store_events(*events):
    """Stores events (UsageEvent rows and UsageDaily roll-ups) exactly as the drain does."""
    return store(list(events), PriceBook.load())


@pytest.fixture
def prices(db):
    load_default_prices()


@pytest.fixture
def acme(db):
    from accounting.tenants.services import do_create_api_key, do_create_tenant

    tenant = do_create_tenant("acme", "Acme")
    key, plaintext = do_create_api_key(tenant, name="ci")
    return tenant, key, plaintext


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


@pytest.fixture(scope="module", autouse=True)
def _release_request_thread_connections():
    """Django runs each ASGI request's sync code in a thread of its own; the database connection such a thread
    opened (CONN_MAX_AGE > 0) is only closed when the garbage collector reclaims it. Reclaim them now, so that
    PostgreSQL can drop the test database at the end of the run."""
    yield
    import gc

    gc.collect()
