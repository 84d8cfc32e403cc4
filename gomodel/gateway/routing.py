"""Model routing: a virtual model (alias), the `provider` hint, a `provider/` prefix, or the first
provider listing the model; then the failover candidates that follow it."""

from providers.base import Target

from .errors import NOT_FOUND, PROVIDER, GatewayError
from .registry import MISS_REFRESH_INTERVAL, ModelRegistry


def undecryptable(registry: ModelRegistry, model: str, provider: str | None) -> GatewayError | None:
    """A miss that an enabled provider with an undecryptable key may explain: a 503 naming it, never a
    silent 404 (replicas with different GOMODEL_ENCRYPTION_KEYS)."""
    broken = registry.undecryptable
    if not broken:
        return None
    named = provider or model.partition("/")[0]
    if provider is not None and provider not in broken:
        return None  # a provider that is simply not configured
    suspects = [named] if named in broken else [name for name, models in broken.items()
                                                  if model in models] or sorted(broken)
    return GatewayError(503, PROVIDER, f"Provider(s) {', '.join(suspects)} cannot be used: the stored API key "
                                       "cannot be decrypted by this gateway (check GOMODEL_ENCRYPTION_KEYS).",
                        code="provider_key_undecryptable")


async def resolve(registry: ModelRegistry, model: str, provider: str | None) -> tuple[Target, str]:
    await registry.ensure_loaded()
    if provider is not None:
        target = registry.targets.get(provider)
        if target is None:
            if (error := undecryptable(registry, model, provider)) is not None:
                raise error
            raise GatewayError(404, NOT_FOUND, f"Provider '{provider}' is not configured.", param="provider",
                               code="provider_not_found")
        prefix = provider + "/"
        return target, model[len(prefix):] if model.startswith(prefix) else model
    split = registry.split(model)
    if split is not None:
        return split
    target = registry.find(model)
    if target is None:
        await registry.refresh(min_interval=MISS_REFRESH_INTERVAL)
        target = registry.find(model)
    if target is None:
        if (error := undecryptable(registry, model, None)) is not None:
            raise error
        raise GatewayError(404, NOT_FOUND, f"The model '{model}' is not served by any configured provider.",
                           param="model", code="model_not_found")
    return target, model


async def candidates(registry: ModelRegistry, breaker, model: str, provider: str | None) -> list[tuple[Target, str]]:
    """Where to send the request, in order: the first answer that is not a failover-worthy failure wins."""
    await registry.ensure_loaded()
    if provider is None and model in registry.aliases:
        refs = registry.alias_order(model, breaker.is_open)
        found = [split for ref in refs if (split := registry.split(ref)) is not None]
        if not found:
            raise GatewayError(404, NOT_FOUND, f"The virtual model '{model}' has no target on a configured "
                               "provider.", param="model", code="model_not_found")
        return found
    primary = await resolve(registry, model, provider)
    rules = registry.failover.get(f"{primary[0].name}/{primary[1]}") or registry.failover.get(model) or ()
    chain = [primary]
    for ref in rules:
        split = registry.split(ref)
        if split is not None and split not in chain:
            chain.append(split)
    return chain
