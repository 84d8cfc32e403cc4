"""Provider and model quotas (gomodel/gateway/quotas.py) seen from a client through the openai SDK: the wait, the
failover to the next target, the 429 naming the quota, a model's quota only on that model, concurrency under
parallel streams. The exact count across processes: tests/integration/test_limits_two_servers.py."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from django.conf import settings as django_settings

from gomodel.gateway.runtime import invalidate_local

pytestmark = [pytest.mark.e2e]

HI = [{"role": "user", "content": "hi"}]
MASTER = {"Authorization": f"Bearer {django_settings.GOMODEL_MASTER_KEY}"}


@pytest.fixture
def two_providers(make_provider, upstream):
    first = make_provider(name="primary", provider_type="openai", base_url=f"http://127.0.0.1:{upstream.port}/a/v1")
    second = make_provider(name="backup", provider_type="groq", base_url=f"http://127.0.0.1:{upstream.port}/b/v1",
                           api_key="gsk-backup")
    return first, second


@pytest.fixture
def client(gateway, tenant_key):
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key=tenant_key[2], max_retries=0)


def set_quota(config, **fields):
    from accounting.provider_configs.services import do_update_provider

    do_update_provider("test", config, fields)
    invalidate_local("providers")


def quota_error(exc_info):
    error = exc_info.value
    assert error.status_code == 429
    body = error.response.json()["error"]
    assert (body["type"], body["code"]) == ("rate_limit_error", "provider_quota_exceeded")
    return body["message"], error.response.headers


def test_provider_rpm_quota_answers_429_naming_it_without_waiting_longer_than_max(client, two_providers, settings,
                                                                                  upstream):
    settings.QUOTA_QUEUE_MAX_WAIT = 1.0
    set_quota(two_providers[0], rpm_limit=2)
    for _ in range(2):
        client.chat.completions.create(model="primary/gpt-4o-mini", messages=HI)
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="primary/gpt-4o-mini", messages=HI)
    assert time.monotonic() - started < 1.0  # the next request fits in 30 s: no point in waiting for it
    message, headers = quota_error(caught)
    assert "provider primary" in message and "requests-per-minute: 2" in message
    assert 25 <= int(headers["retry-after"]) <= 30
    assert len(upstream.chat_requests()) == 2  # the refused call never reached the provider


def test_over_the_quota_fails_over_to_the_next_target(client, two_providers, upstream, usage_events, settings):
    settings.FAILOVER_RULES_JSON = '{"primary/gpt-4o-mini": ["backup/gpt-4o-mini"]}'
    set_quota(two_providers[0], rpm_limit=1)
    assert client.chat.completions.create(model="primary/gpt-4o-mini", messages=HI).provider == "primary"
    raw = client.chat.completions.with_raw_response.create(model="primary/gpt-4o-mini", messages=HI)
    assert raw.parse().provider == "backup"
    [event] = usage_events(raw.headers["x-request-id"])
    assert [(a["provider"], a["error"]) for a in event["attempts"]] == [("primary", "provider_quota_exceeded"),
                                                                        ("backup", None)]


def test_a_model_quota_applies_to_that_model_only(client, two_providers):
    set_quota(two_providers[0], model_quotas={"gpt-4o-mini": {"rpm": 1}})
    client.chat.completions.create(model="primary/gpt-4o-mini", messages=HI)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="primary/gpt-4o-mini", messages=HI)
    assert "model primary/gpt-4o-mini" in quota_error(caught)[0]
    for _ in range(3):  # another model of the same provider: no quota
        client.chat.completions.create(model="primary/tool-model", messages=HI)


def test_a_call_waits_for_a_slot_then_goes(client, two_providers, settings):
    settings.QUOTA_QUEUE_MAX_WAIT = 2.0
    set_quota(two_providers[0], concurrency_limit=1)
    with ThreadPoolExecutor(2) as pool:
        started = time.monotonic()
        answers = list(pool.map(lambda _: client.chat.completions.create(model="primary/delay-gpt-4o-mini",
                                                                         messages=HI), range(2)))
    assert [a.provider for a in answers] == ["primary", "primary"]
    assert time.monotonic() - started >= 0.95  # one after the other (0.5 s each)


def test_the_wait_is_bounded(client, two_providers, settings, upstream):
    settings.QUOTA_QUEUE_MAX_WAIT = 0.2
    set_quota(two_providers[0], concurrency_limit=1)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(client.chat.completions.create, model="primary/delay-gpt-4o-mini", messages=HI)
        deadline = time.monotonic() + 5
        while not upstream.chat_requests() and time.monotonic() < deadline:  # the first holds the slot
            time.sleep(0.005)
        started = time.monotonic()
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="primary/gpt-4o-mini", messages=HI)
        waited = time.monotonic() - started
        assert first.result().provider == "primary"
    # It waited for room, and gave up at QUOTA_QUEUE_MAX_WAIT: the slot frees ~0.5 s after the first began
    # (waiting for it would have been a 200).
    assert 0.1 <= waited < 1.0  # (a slot is polled every 50 ms: it gives up when the next poll is past it)
    assert "concurrent-requests: 1" in quota_error(caught)[0]


def test_concurrency_quota_never_exceeded_under_parallel_streams(client, two_providers, settings, redis_sync):
    settings.QUOTA_QUEUE_MAX_WAIT = 5.0
    config = two_providers[0]
    set_quota(config, concurrency_limit=2)
    slots = f"{settings.LIMITS_PREFIX}:{{p{config.pk}}}:p:conc"
    peak, done = [0], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], redis_sync.zcard(slots))
            time.sleep(0.005)

    def stream(_):
        chunks = client.chat.completions.create(model="primary/delay-gpt-4o-mini", messages=HI, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(6) as pool:
            texts = list(pool.map(stream, range(6)))
    finally:
        done.set()
        watcher.join()
    assert all(texts)
    assert 1 <= peak[0] <= 2
    assert time.monotonic() - started >= 1.4  # six half-second streams, two at a time: three waves
    assert redis_sync.zcard(slots) == 0  # every slot freed when its stream ended


def test_quotas_set_through_the_management_api_reconciled_and_shown(gateway, client, two_providers):
    config = two_providers[0]
    url = f"{gateway}/api/v1/providers/{config.pk}/"
    bad = httpx.patch(url, headers=MASTER, json={"model_quotas": {"gpt-4o-mini": {"rpm": 0}}})
    assert bad.status_code == 400 and "model_quotas" in bad.json()
    assert httpx.patch(url, headers=MASTER, json={"model_quotas": {"gpt-4o-mini": {"rpmm": 3}}}).status_code == 400
    assert httpx.patch(url, headers=MASTER, json={"tpm_limit": 0}).status_code == 400
    saved = httpx.patch(url, headers=MASTER, json={"tpm_limit": 1000,
                                                   "model_quotas": {"gpt-4o-mini": {"rpm": 5}}})
    assert saved.status_code == 200, saved.text
    client.chat.completions.create(model="primary/gpt-4o-mini", messages=HI, max_tokens=500)
    time.sleep(0.3)  # the settle goes in the next batch, after the answer
    use = httpx.get(url, headers=MASTER).json()["quota_use"]
    tokens = use["provider"]["tokens"]
    assert tokens["limit"] == 1000
    assert 1000 - 60 < tokens["remaining"] < 1000  # the 500 reserved went back; what was used stays (refilling)
    assert use["models"]["gpt-4o-mini"]["requests"]["remaining"] == 4
    from accounting.models import AuditEntry

    assert AuditEntry.objects.filter(object_type="providerconfig", action="update",
                                     changes__has_key="tpm_limit").exists()
