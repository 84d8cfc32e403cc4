"""Which provider serves which model, kept in memory: built from ProviderConfig rows and each
upstream's `GET /models`, refreshed periodically and on a miss."""

import asyncio
import logging
import time

from asgiref.sync import sync_to_async
from django.db import close_old_connections

from .adapters import adapter_for
from .base import Target

log = logging.getLogger(__name__)
MISS_REFRESH_INTERVAL = 10.0  # a miss refreshes the lists at most this often


def load_targets() -> list[Target]:
    from .models import ProviderConfig

    close_old_connections()
    targets = []
    for config in ProviderConfig.objects.filter(enabled=True).order_by("id"):
        try:
            api_key = config.api_key
        except ValueError:
            log.error("provider %s: its key cannot be decrypted; skipping it", config.name)
            continue
        targets.append(Target(id=config.id, name=config.name, provider_type=config.provider_type,
                              wire=config.spec.wire, base_url=config.effective_base_url, api_key=api_key,
                              extra_models=tuple(config.extra_models)))
    return targets


class ModelRegistry:
    def __init__(self, client):
        self.client = client
        self.targets: dict[str, Target] = {}
        self.models: dict[str, list[str]] = {}
        self.loaded = False
        self._last_refresh = 0.0
        self._load_lock = asyncio.Lock()
        self._refresh_task: asyncio.Task | None = None

    async def ensure_loaded(self):
        if not self.loaded:
            async with self._load_lock:
                if not self.loaded:
                    await self.reload()

    async def reload(self):
        """Re-read the configs (after a change in admin), then their model lists."""
        targets = await sync_to_async(load_targets, thread_sensitive=True)()
        self.targets = {t.name: t for t in targets}
        self.models = {t.name: list(t.extra_models) + [m for m in self.models.get(t.name, [])
                                                       if m not in t.extra_models] for t in targets}
        self.loaded = True
        await self.refresh()

    def invalidate(self):
        self.loaded = False

    async def refresh(self, min_interval: float = 0.0):
        """Fetch every target's model list; concurrent callers share one refresh."""
        if self._refresh_task is None or self._refresh_task.done():
            if time.monotonic() - self._last_refresh < min_interval:
                return
            self._refresh_task = asyncio.ensure_future(self._refresh_all())
        await asyncio.shield(self._refresh_task)

    async def _refresh_all(self):
        self._last_refresh = time.monotonic()
        targets = list(self.targets.values())
        results = await asyncio.gather(*(self._fetch(t) for t in targets), return_exceptions=True)
        for target, result in zip(targets, results):
            if isinstance(result, BaseException):
                log.warning("provider %s: listing models failed: %s", target.name, result or type(result).__name__)
                continue
            merged = list(target.extra_models) + [m for m in result if m not in target.extra_models]
            self.models[target.name] = merged

    async def _fetch(self, target: Target) -> list[str]:
        adapter = adapter_for(target.wire)
        request = adapter.build_models_request(target)
        response = await self.client.request(request.method, request.url, headers=request.headers, timeout=10.0)
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}")
        return adapter.parse_models(response.content)

    def find(self, model: str) -> Target | None:
        for name, target in self.targets.items():
            if model in self.models.get(name, ()):
                return target
        return None

    def split(self, model: str) -> tuple[Target, str] | None:
        """`provider/model`, when the prefix names a configured provider."""
        prefix, sep, rest = model.partition("/")
        if sep and rest and prefix in self.targets:
            return self.targets[prefix], rest
        return None

    def listing(self) -> list[tuple[Target, str]]:
        return [(t, m) for name, t in self.targets.items() for m in self.models.get(name, ())]
