"""gomodel.gateway.registry: the in-memory map of which provider serves which model (real DB, the fake upstream's
/models)."""

import asyncio
import socket

import httpx
import pytest

from gomodel.gateway import registry as registry_module
from providers.models import ProviderConfig
from gomodel.gateway.registry import ModelRegistry


def closed_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


@pytest.fixture
def configs(make_provider, upstream):
    # load_targets() calls close_old_connections(): these tests commit for real (make_provider is transactional)
    return (make_provider(name="openai", provider_type="openai", base_url=upstream.base_url),
            make_provider(name="openrouter", provider_type="openrouter", base_url=closed_url(),
                          models="meta-llama/llama-3.1-8b-instruct"))


def run(registry: ModelRegistry, steps):
    async def main():
        async with httpx.AsyncClient() as client:
            registry.client = client
            result = await steps()
            await registry.settled()
            return result

    return asyncio.run(main())


def test_load_lists_models_from_each_provider_and_its_extra_models(configs):
    registry = ModelRegistry(None)

    async def steps():
        await registry.ensure_loaded()
        await registry.settled()

    run(registry, steps)
    assert set(registry.targets) == {"openai", "openrouter"}
    assert registry.targets["openai"].api_key == "sk-upstream-secret"  # decrypted for the hot path
    assert "gpt-4o-mini" in registry.models["openai"]
    assert registry.models["openrouter"] == ["meta-llama/llama-3.1-8b-instruct"]  # its /models failed
    assert registry.find("gpt-4o-mini").name == "openai"
    assert registry.find("meta-llama/llama-3.1-8b-instruct").name == "openrouter"
    assert registry.find("nope") is None
    assert ("openai", "gpt-4o-mini") in {(t.name, m) for t, m in registry.listing()}


def test_split_needs_a_configured_prefix(configs):
    registry = ModelRegistry(None)
    run(registry, registry.ensure_loaded)
    target, model = registry.split("openrouter/meta-llama/llama-3.1-8b-instruct")
    assert (target.name, model) == ("openrouter", "meta-llama/llama-3.1-8b-instruct")
    assert registry.split("groq/llama-3.3-70b") is None
    assert registry.split("openai/") is None and registry.split("gpt-4o-mini") is None


def test_disabled_providers_are_not_loaded(configs):
    ProviderConfig.objects.filter(name="openrouter").update(enabled=False)
    registry = ModelRegistry(None)
    run(registry, registry.ensure_loaded)
    assert set(registry.targets) == {"openai"}


def test_a_change_during_a_reload_is_not_lost(configs, monkeypatch):
    """A provider is disabled (and the registry invalidated) while a reload is reading the configs: the
    reload's stale answer must not be taken as current."""
    registry = ModelRegistry(None)
    real_load = registry_module.load_config

    def load_then_disable():
        loaded = real_load()  # read while openrouter is still enabled
        ProviderConfig.objects.filter(name="openrouter").update(enabled=False)
        registry.invalidate()  # what the change's invalidation does, landing mid-reload
        return loaded

    async def steps():
        monkeypatch.setattr(registry_module, "load_config", load_then_disable)
        await registry.ensure_loaded()
        monkeypatch.setattr(registry_module, "load_config", real_load)
        await registry.ensure_loaded()
        return set(registry.targets)

    assert run(registry, steps) == {"openai"}


def test_knows_follows_the_current_model_lists():
    """What /metrics may use as a model label: only a model on its provider's current list."""
    registry = ModelRegistry(None)
    registry.models = {"openai": ["gpt-4o-mini"]}
    assert registry.knows("openai", "gpt-4o-mini")
    assert not registry.knows("openai", "anything-a-tenant-types") and not registry.knows("groq", "gpt-4o-mini")
    registry.models["openai"] = ["gpt-4o-mini", "gpt-5"]  # a refresh replaces the list
    assert registry.knows("openai", "gpt-5")
