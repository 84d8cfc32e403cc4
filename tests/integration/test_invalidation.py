"""Cache invalidation against the running gateway and a real Redis: a key, tenant or provider change
takes effect on the very next request, although keys and providers are cached in process memory."""

import time

import httpx
import pytest
import redis

HELLO = [{"role": "user", "content": "Hello"}]


def ask(gateway, key, model="gpt-4o-mini"):
    return httpx.post(f"{gateway}/v1/chat/completions", json={"model": model, "messages": HELLO},
                      headers={"Authorization": f"Bearer {key}"})


def test_revoking_a_cached_key_is_401_on_the_next_request(gateway, provider, tenant_key, upstream, usage_events):
    from accounting.tenants.services import do_revoke_api_key

    _, key, plaintext = tenant_key
    assert ask(gateway, plaintext).status_code == 200  # the key is now cached
    assert ask(gateway, plaintext).status_code == 200
    do_revoke_api_key(key)

    response = ask(gateway, plaintext)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert len(upstream.chat_requests()) == 2
    assert [e["status"] for e in usage_events(expect=2)] == [200, 200]


def test_deactivating_a_cached_tenant_is_401_on_the_next_request(gateway, provider, tenant_key):
    tenant, _, plaintext = tenant_key
    assert ask(gateway, plaintext).status_code == 200
    tenant.active = False
    tenant.save()
    assert ask(gateway, plaintext).status_code == 401
    tenant.active = True
    tenant.save()
    assert ask(gateway, plaintext).status_code == 200


def test_an_invalidation_published_by_another_process_clears_the_cache(gateway, provider, tenant_key, settings):
    """Another gateway process (or admin on another host) revokes a key: only the Redis message tells us."""
    from accounting.models import ApiKey

    _, key, plaintext = tenant_key
    assert ask(gateway, plaintext).status_code == 200
    time.sleep(0.2)  # let the messages the fixtures' saves published reach the gateway first
    assert ask(gateway, plaintext).status_code == 200
    ApiKey.objects.filter(id=key.id).update(active=False)  # no signal: this process does not know
    assert ask(gateway, plaintext).status_code == 200  # served from the cache, as designed

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        assert client.publish(settings.INVALIDATION_CHANNEL, "keys") >= 1  # the gateway is subscribed
    finally:
        client.close()
    deadline = time.monotonic() + 3.0
    status = 200
    while status == 200 and time.monotonic() < deadline:
        time.sleep(0.02)
        status = ask(gateway, plaintext).status_code
    assert status == 401


def test_an_unknown_key_becomes_valid_once_created(gateway, provider, tenant_key):
    """A miss is cached briefly too; creating the key invalidates it."""
    from accounting.tenants.services import do_create_api_key

    tenant, _, _ = tenant_key
    assert ask(gateway, "sk_gom_not_yet").status_code == 401
    _, plaintext = do_create_api_key(tenant, name="new")
    assert ask(gateway, plaintext).status_code == 200


def test_a_provider_added_after_start_routes_at_once(gateway, provider, tenant_key, make_provider, upstream):
    model = "openrouter/meta-llama/llama-3.1-8b-instruct"
    assert ask(gateway, tenant_key[2], model).status_code == 404
    make_provider(name="openrouter", provider_type="openrouter", base_url=upstream.base_url, api_key="sk-or")
    response = ask(gateway, tenant_key[2], model)
    assert response.status_code == 200, response.text
    assert response.json()["provider"] == "openrouter"


def test_a_disabled_provider_stops_routing_at_once(gateway, provider, tenant_key, upstream):
    assert ask(gateway, tenant_key[2]).status_code == 200
    provider.enabled = False
    provider.save()
    response = ask(gateway, tenant_key[2])
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"
    assert len(upstream.chat_requests()) == 1


@pytest.mark.parametrize("via", ["authorization", "x-api-key"])
def test_master_key_is_not_affected_by_invalidations(gateway, provider, settings, via):
    from gomodel.gateway.invalidation import publish

    headers = ({"Authorization": f"Bearer {settings.GOMODEL_MASTER_KEY}"} if via == "authorization"
               else {"x-api-key": settings.GOMODEL_MASTER_KEY})
    publish("all")
    response = httpx.post(f"{gateway}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": HELLO},
                          headers=headers)
    assert response.status_code == 200
