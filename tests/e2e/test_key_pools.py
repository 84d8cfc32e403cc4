"""Provider key pools end to end through the openai SDK: calls spread over a config's keys, a key that answers
429 sits out its cool-down, a key that answers 401 is taken out and flagged, the key's label is on the usage."""

import asyncio
import collections
import time

import httpx
import openai
import pytest

pytestmark = [pytest.mark.e2e]
HELLO = [{"role": "user", "content": "hi"}]
KEYS = {"sk-pool-one": "key-1", "sk-pool-two": "key-2", "sk-pool-three": "key-3"}


@pytest.fixture
def pooled(make_provider, upstream):
    """The provider "openai" with three keys: its own (key-1) and two more (key-2, key-3), added as the admin does."""
    from accounting.provider_configs.services import do_add_provider_key

    config = make_provider(base_url=upstream.base_url, api_key="sk-pool-one")
    do_add_provider_key("tester", config, "sk-pool-two")
    do_add_provider_key("tester", config, "sk-pool-three")
    return config


@pytest.fixture
def client(gateway, tenant_key):
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key=tenant_key[2], max_retries=0)


def ask(client, **extra):
    return client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO, **extra)


def wait_for(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_three_keys_share_three_hundred_calls(client, pooled, upstream, usage_events):
    for _ in range(300):
        assert ask(client).http_response.status_code == 200
    counts = collections.Counter(upstream.keys_used())
    assert set(counts) == set(KEYS)
    assert all(90 <= count <= 110 for count in counts.values()), counts
    labels = collections.Counter(e["provider_key"] for e in usage_events(expect=300))
    assert labels == collections.Counter({KEYS[k]: n for k, n in counts.items()})


def test_a_conversation_sticks_to_one_key(client, pooled, upstream):
    for user in ("alice", "bob", "carol", "dave"):
        upstream.requests.clear()
        for _ in range(5):
            ask(client, user=user)
        assert len(set(upstream.keys_used())) == 1, user
    upstream.requests.clear()
    for _ in range(5):
        ask(client, extra_body={"prompt_cache_key": "thread-42"})
    assert len(set(upstream.keys_used())) == 1


def test_a_key_answering_429_sits_out_its_cool_down(client, pooled, upstream, usage_events, redis_sync, settings):
    upstream.key_answers["sk-pool-two"] = (429, b"30")
    raws = [ask(client) for _ in range(30)]
    assert all(raw.http_response.status_code == 200 for raw in raws)
    used = upstream.keys_used()
    assert used.count("sk-pool-two") == 1  # answered 429 once; the call went on to the next key at once
    assert collections.Counter(used)["sk-pool-one"] + collections.Counter(used)["sk-pool-three"] == 30
    # The cool-down is shared through Redis, with the Retry-After as its TTL; by label, never the key.
    [name] = list(redis_sync.scan_iter(match=settings.KEY_COOLDOWN_PREFIX + ":*"))
    assert name.decode().endswith(f":{pooled.pk}:key-2")
    assert 25_000 < redis_sync.pttl(name) <= 30_000
    events = usage_events(expect=30)
    assert "key-2" not in {e["provider_key"] for e in events}
    [retried] = [e for e in events if len(e["attempts"]) == 2]
    assert [(a["key"], a["status"]) for a in retried["attempts"]] == [("key-2", 429), ("key-3", 200)]


def test_every_key_cooling_answers_429(client, pooled, upstream):
    for key in KEYS:
        upstream.key_answers[key] = (429, b"30")
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert sorted(upstream.keys_used()) == sorted(KEYS)  # each key once, then the client's 429
    upstream.requests.clear()
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert len(upstream.keys_used()) == 1  # all cooling: only the one whose cool-down ends first is tried


def test_a_key_answering_401_is_taken_out_and_flagged(client, gateway, pooled, upstream, usage_events):
    from accounting.models import AuditEntry
    from providers.models import ProviderKey

    upstream.key_answers["sk-pool-three"] = (401, None)
    raws = [ask(client) for _ in range(6)]
    assert all(raw.http_response.status_code == 200 for raw in raws)
    key = ProviderKey.objects.get(config=pooled, label="key-3")
    wait_for(lambda: ProviderKey.objects.get(pk=key.pk).rejected_at is not None)
    assert AuditEntry.objects.filter(action="reject_key", object_type="providerkey", object_id=str(key.pk)).count() == 1
    upstream.requests.clear()
    for _ in range(12):
        ask(client)
    assert "sk-pool-three" not in upstream.keys_used()

    def ready():
        return httpx.get(f"{gateway}/health/ready", timeout=5)

    wait_for(lambda: "rejected_provider_keys" in ready().json())
    response = ready()
    assert response.status_code == 200  # the other keys serve: flagged, not unready
    assert response.json()["rejected_provider_keys"] == [{"provider": "openai", "key": "key-3"}]
    assert "sk-pool" not in response.text


def test_the_single_key_case_is_unchanged(client, provider, upstream, usage_events):
    """One key: no pool; a 401 is the client's 502 as before, and nothing is flagged."""
    raw = ask(client)
    [event] = usage_events(raw.headers["x-request-id"])
    assert event["provider_key"] == "key-1"
    upstream.key_answers["sk-upstream-secret"] = (401, None)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert caught.value.status_code == 502
    provider.refresh_from_db()
    assert provider.api_key_rejected_at is None


def test_cool_downs_are_shared_between_runtimes(pooled, settings, redis_sync):
    """What one process learns of a 429 reaches another: the message on the invalidation channel, and the Redis
    key for a process that (re)subscribes later."""
    from gomodel.gateway.key_pool import MESSAGE_PREFIX
    from gomodel.gateway.runtime import Runtime

    target = pooled.as_target()

    async def steps():
        first, second = Runtime(), Runtime()
        try:
            pubsub = second.redis.pubsub(ignore_subscribe_messages=True)
            await pubsub.subscribe(settings.INVALIDATION_CHANNEL)
            first.key_states.cool(target, 20)
            await first.key_states.settled()
            message = None
            for _ in range(50):
                message = await pubsub.get_message(timeout=0.1)
                if message is not None:
                    break
            assert message is not None and message["data"].decode().startswith(MESSAGE_PREFIX)
            second.invalidate(message["data"].decode())  # what its listener does with it
            assert second.key_states.sits_out(target)
            await pubsub.aclose()
            late = Runtime()  # a process that subscribes after the 429
            try:
                await late._load_cooldowns()  # what its listener does once subscribed
                return late.key_states.sits_out(target), late.key_states.cool_until(target) - time.time()
            finally:
                await late.close()
        finally:
            await first.close()
            await second.close()

    sits_out, left = asyncio.run(steps())
    assert sits_out and 15 < left <= 20


def test_a_pooled_answer_is_cached_and_replayed(gateway, pooled, upstream, transactional_db):
    """The response cache keys on the request, not the key that sent it: whichever pool key answered, the same
    request is a hit."""
    from accounting.tenants.services import do_create_api_key, do_create_tenant

    tenant = do_create_tenant("cached", cache_mode="exact")
    _, plaintext = do_create_api_key(tenant, name="ci")
    cached = openai.OpenAI(base_url=f"{gateway}/v1", api_key=plaintext, max_retries=0)
    ask(cached, user="zed")
    raw = ask(cached, user="zed")
    assert raw.headers["x-gomodel-cache"] == "hit-exact"
    assert len(upstream.keys_used()) == 1


def test_a_cooled_key_comes_back_and_streams_move_on_too(client, pooled, upstream, settings):
    settings.KEY_COOLDOWN_DEFAULT = 1.0
    upstream.key_answers["sk-pool-two"] = (429, None)  # no Retry-After: KEY_COOLDOWN_DEFAULT
    for _ in range(3):
        chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from the fake upstream!"
    assert upstream.keys_used().count("sk-pool-two") == 1  # a stream's 429 moved on to the next key at once
    del upstream.key_answers["sk-pool-two"]
    time.sleep(1.2)
    upstream.requests.clear()
    for _ in range(6):
        ask(client)
    assert upstream.keys_used().count("sk-pool-two") == 2  # back in the round-robin


def test_models_are_listed_with_a_usable_key_when_the_own_key_is_rejected(client, pooled, upstream):
    from accounting.provider_configs.services import do_reject_provider_key

    do_reject_provider_key(pooled.pk, "key-1", 401)
    upstream.key_answers["sk-pool-one"] = (401, None)
    assert "openai/gpt-4o-mini" in {m.id for m in client.models.list()}
    listed = [r["headers"]["authorization"] for r in upstream.requests if r["path"].endswith("/models")]
    assert listed and "Bearer sk-pool-one" not in listed
    upstream.requests.clear()
    for _ in range(4):
        ask(client)
    assert "sk-pool-one" not in upstream.keys_used()
