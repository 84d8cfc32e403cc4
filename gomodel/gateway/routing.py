"""Model routing: the `provider` hint, then a `provider/` prefix, then the first provider listing it."""

from providers.base import Target
from providers.registry import MISS_REFRESH_INTERVAL, ModelRegistry

from .errors import NOT_FOUND, GatewayError


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
