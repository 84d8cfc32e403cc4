"""Which adapter module speaks a provider's wire format."""

from importlib import import_module

_cache = {}


def adapter_for(wire: str):
    module = _cache.get(wire)
    if module is None:
        module = _cache[wire] = import_module(f"providers.{wire}")
    return module
