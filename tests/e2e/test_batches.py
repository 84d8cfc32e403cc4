"""/v1/batches through the openai SDK against the fake OpenAI-format upstream: a batch made from the caller's
own file, listed, retrieved and cancelled; the poller bills a finished batch with one usage event per result
line at the batch price, once; another tenant can neither use the file nor see, retrieve or cancel the batch."""

from datetime import datetime, timezone
from decimal import Decimal

import openai
import orjson
import pytest

pytestmark = [pytest.mark.e2e]

LINES = b"".join(orjson.dumps({"custom_id": f"req-{n}", "method": "POST", "url": "/v1/chat/completions",
                                "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}})
                 + b"\n" for n in range(3))


@pytest.fixture
def two_clients(gateway, provider, upstream):
    from accounting.models import ModelPrice
    from accounting.tenants.services import do_create_api_key, do_create_tenant

    ModelPrice.objects.create(provider="openai", model_pattern="*", input_per_million=Decimal("1"),
                              output_per_million=Decimal("10"), valid_from=datetime(2020, 1, 1, tzinfo=timezone.utc))
    clients = []
    for slug in ("alpha", "beta"):
        key = do_create_api_key(do_create_tenant(slug, slug.title()), name="batches")[1]
        clients.append(openai.OpenAI(base_url=f"{gateway}/v1", api_key=key, max_retries=0))
    return clients


def test_a_finished_batch_is_billed_once_per_result_line_at_the_batch_price(two_clients, upstream, usage_events):
    from accounting.provider_batches.tasks import poll_batches, result_request_id

    alpha, _ = two_clients
    upload = alpha.files.create(file=("in.jsonl", LINES), purpose="batch")
    batch = alpha.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert batch.status == "validating" and batch.input_file_id == upload.id
    assert [b.id for b in alpha.batches.list()] == [batch.id]

    assert poll_batches() == 3
    assert poll_batches() == 0  # billed once
    for n in range(3):
        [event] = usage_events(result_request_id("openai", batch.id, f"req-{n}"))
        assert (event["endpoint"], event["model"], event["status"]) == ("/v1/batches", "gpt-4o-mini", 200)
        assert (event["prompt_tokens"], event["completion_tokens"], event["usage_source"]) == (11, 6, "reported")
        # 11 × $1 + 6 × $10 per million, at half the price
        assert (Decimal(event["cost"]), event["cost_source"]) == (Decimal("0.0000355"), "admin")
    assert alpha.batches.retrieve(batch.id).status == "completed"


def test_a_batch_can_be_cancelled(two_clients, upstream):
    alpha, _ = two_clients
    upload = alpha.files.create(file=("in.jsonl", LINES), purpose="batch")
    batch = alpha.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert alpha.batches.cancel(batch.id).status == "cancelled"


def test_another_tenants_file_and_batch_are_404s(two_clients, upstream):
    alpha, beta = two_clients
    upload = alpha.files.create(file=("in.jsonl", LINES), purpose="batch")
    with pytest.raises(openai.NotFoundError) as raised:
        beta.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert raised.value.body["code"] == "file_not_found"
    batch = alpha.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
    before = len(upstream.requests)
    for call in (beta.batches.retrieve, beta.batches.cancel):
        with pytest.raises(openai.NotFoundError) as raised:
            call(batch.id)
        assert raised.value.body["code"] == "batch_not_found"
    assert list(beta.batches.list()) == []
    assert len(upstream.requests) == before


def test_the_poller_runs_on_the_beat(settings):
    import accounting.tasks  # noqa: F401  (what autodiscover_tasks imports when a worker starts)
    from gomodel.celery import app

    entry = app.conf.beat_schedule["batch-poll"]
    assert (entry["task"], entry["schedule"]) == ("accounting.poll_batches", settings.BATCH_POLL_INTERVAL)
    assert "accounting.poll_batches" in app.tasks


def test_a_spent_budget_refuses_a_new_batch(two_clients, upstream, usage_events, redis_sync):
    from accounting.models import ApiKey
    from accounting.provider_batches.tasks import poll_batches

    alpha, _ = two_clients
    key = ApiKey.objects.get(tenant__slug="alpha")
    key.budget_usd, key.budget_period = Decimal("0.0001"), "daily"  # one batch of 3 lines costs $0.0001065
    key.save()
    upload = alpha.files.create(file=("in.jsonl", LINES), purpose="batch")
    alpha.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert poll_batches() == 3
    from accounting.usage.drain import drain

    drain()  # the events priced into the budget's counters
    with pytest.raises(openai.RateLimitError) as raised:
        alpha.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert raised.value.body["code"] == "budget_exceeded"
