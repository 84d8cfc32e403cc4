"""The batch poller: asks the provider about every batch not billed yet and, once one has finished, bills
its results: one usage event per line of its output file (the `usage` of each answer), priced at the batch
price (the price book's cost times BATCH_PRICE_FACTOR: OpenAI and Anthropic charge half for batches). Each
event's request id is derived from the batch and the line's `custom_id`, so a poll that is repeated (a crash
between the events and `billed_at`) writes nothing twice: the drain keeps one row per request id."""

import hashlib
import logging
import time
from collections.abc import Iterable
from decimal import Decimal
from itertools import islice

import httpx
import orjson
import redis as redis_errors
from celery import shared_task
from django.conf import settings
from django.utils import timezone

from providers.base import Usage

from ..models import ProviderBatch
from ..prices.book import COST_QUANTUM, PriceBook
from ..usage.events import StreamEvent, encode
from ..usage.stream import redis_client
from .services import FINISHED, do_update_batch, unbilled

log = logging.getLogger(__name__)
ENDPOINT = "/v1/batches"
EVENTS_PER_WRITE = 1000


def _usage(body: dict) -> Usage | None:
    raw = body.get("usage")
    if isinstance(raw, dict) and "input_tokens" in raw and "prompt_tokens" not in raw:  # /v1/responses lines
        raw = {"prompt_tokens": raw.get("input_tokens"), "completion_tokens": raw.get("output_tokens"),
               "total_tokens": raw.get("total_tokens"), "prompt_tokens_details": raw.get("input_tokens_details"),
               "completion_tokens_details": raw.get("output_tokens_details")}
    return Usage.from_openai(raw)


def result_request_id(provider: str, batch_id: str, custom_id: object) -> str:
    """The usage event's request id of one result line: the same on every poll (the drain keeps one row)."""
    return "batch-" + hashlib.sha256(f"{provider}/{batch_id}/{custom_id}".encode()).hexdigest()[:48]


def result_events(batch: ProviderBatch, provider_type: str, provider_id: int, lines: Iterable[str | bytes],
                  prices: PriceBook) -> list[StreamEvent]:
    """One usage event per result line of a finished batch's output file (lines without an answer: none)."""
    events = []
    now = time.time()
    factor = Decimal(str(settings.BATCH_PRICE_FACTOR))
    for line in lines:
        if not line.strip():
            continue
        try:
            result = orjson.loads(line)
        except orjson.JSONDecodeError:
            log.warning("batch %s: an output line is not JSON; skipped", batch.batch_id)
            continue
        response = result.get("response") if isinstance(result, dict) else None
        if not isinstance(response, dict):
            continue
        body = response["body"] if isinstance(response.get("body"), dict) else {}
        usage = _usage(body)
        model = str(body.get("model") or "")
        event = StreamEvent(
            result_request_id(batch.provider, batch.batch_id, result.get("custom_id")), ts=now,
            tenant_id=batch.tenant_id, tenant=batch.tenant.slug if batch.tenant is not None else None,
            api_key_id=batch.api_key_id,
            api_key_prefix=batch.api_key.prefix if batch.api_key is not None else "master",
            provider_id=provider_id, provider=batch.provider, provider_type=provider_type, requested_model=model,
            model=model, endpoint=ENDPOINT, status=int(response.get("status_code") or 0),
            usage_source="reported" if usage is not None else "none")
        if usage is not None:
            event.prompt_tokens, event.completion_tokens = usage.prompt_tokens, usage.completion_tokens
            event.total_tokens, event.cached_tokens = usage.total_tokens, usage.cached_tokens
            event.reasoning_tokens = usage.reasoning_tokens
            priced = prices.price(event, event.created_at)
            if priced.cost is not None:
                event.cost = str((priced.cost * factor).quantize(COST_QUANTUM))
                event.cost_source = priced.source
        events.append(event)
    return events


def poll_batch(batch: ProviderBatch, client: httpx.Client, prices: PriceBook) -> int:
    """Refresh one batch; bill it if it has finished. Returns how many usage events it wrote."""
    from providers.models import ProviderConfig

    config = ProviderConfig.objects.filter(name=batch.provider).first()
    if config is None:
        return 0
    target = config.as_target()
    base = target.base_url.rstrip("/")
    headers = {"authorization": f"Bearer {target.api_key}"} if target.api_key else {}
    answer = client.get(f"{base}/batches/{batch.batch_id}", headers=headers)
    answer.raise_for_status()
    listing = answer.json()
    if not isinstance(listing, dict):
        raise ValueError("the batch is not a JSON object")
    do_update_batch(batch, listing)
    if batch.status not in FINISHED:
        return 0
    written = 0
    output = listing.get("output_file_id")
    if output:  # read and billed EVENTS_PER_WRITE lines at a time: an output file may hold 50,000 answers
        redis = redis_client()
        with client.stream("GET", f"{base}/files/{output}/content", headers=headers) as content:
            content.raise_for_status()
            lines = content.iter_lines()
            while chunk := list(islice(lines, EVENTS_PER_WRITE)):
                events = result_events(batch, target.provider_type, target.id, chunk, prices)
                if events:
                    pipe = redis.pipeline(transaction=False)
                    for event in events:
                        pipe.xadd(settings.USAGE_STREAM, {"e": encode(event)})
                    pipe.execute()
                    written += len(events)
    ProviderBatch.objects.filter(pk=batch.pk).update(billed_at=timezone.now())
    return written


@shared_task(name="accounting.poll_batches")
def poll_batches() -> int:
    """Every unbilled batch once; one that cannot be asked about now is asked again next time."""
    batches = unbilled()
    if not batches:
        return 0
    prices = PriceBook.load()
    written = 0
    with httpx.Client(timeout=min(settings.UPSTREAM_TIMEOUT, 60.0)) as client:
        for batch in batches:
            try:
                written += poll_batch(batch, client, prices)
            except (httpx.HTTPError, ValueError, redis_errors.RedisError) as exc:
                log.warning("batch %s on %s could not be polled: %s", batch.batch_id, batch.provider,
                            type(exc).__name__)
    return written
