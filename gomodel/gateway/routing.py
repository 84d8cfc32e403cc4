"""Model routing: a virtual model (alias), the `provider` hint, a `provider/` prefix, or the first
provider listing the model; then the failover candidates that follow it."""

from providers.base import Target

from .errors import NOT_FOUND, GatewayError
from .registry import MISS_REFRESH_INTERVAL, ModelRegistry


async def resolve(registry: ModelRegistry, model: str, provider: str | None) -> tuple[Target, str]:
    await registry.ensure_loaded()
    if provider is not None:
        target = registry.targets.get(provider)
        if target is None:
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
