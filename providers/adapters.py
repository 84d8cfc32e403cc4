"""Which adapter module speaks a provider's wire format (the contract: providers/adapter_protocol.py)."""

from importlib import import_module

from .adapter_protocol import ChatAdapter, EmbeddingsAdapter

_cache: dict[str, ChatAdapter] = {}


def adapter_for(wire: str) -> ChatAdapter:
    module = _cache.get(wire)
    if module is None:
        module = _cache[wire] = import_module(f"providers.{wire}")
    return module


def embeddings_adapter(adapter: ChatAdapter) -> EmbeddingsAdapter | None:
    """The adapter itself if it declares embeddings, else None."""
    return adapter if adapter.supports_embeddings else None  # type: ignore[return-value]
