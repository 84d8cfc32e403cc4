"""Which provider serves which model, kept in memory: built from ProviderConfig rows and each
upstream's `GET /models`, refreshed periodically and on a miss."""

import asyncio
import logging
import time

import orjson
from asgiref.sync import sync_to_async
from django.db import close_old_connections

from providers.adapters import adapter_for
from providers.base import Target

from .key_pool import KeyPool

log = logging.getLogger(__name__)
MISS_REFRESH_INTERVAL = 10.0  # a miss refreshes the lists at most this often


def load_aliases() -> dict[str, list[tuple[str, int]]]:
    from providers.models import ModelAlias, parse_alias_targets

    aliases = {}
    for alias in ModelAlias.objects.filter(enabled=True):
        try:
            aliases[alias.name] = [(t["target"], t["weight"]) for t in parse_alias_targets(alias.targets)]
        except ValueError as exc:
            log.error("model alias %s is invalid and ignored: %s", alias.name, exc)
    return aliases


def load_failover_rules() -> dict[str, list[str]]:
    """FAILOVER_RULES_JSON: {"provider/model" or "model": ["provider/model", …]}."""
    from django.conf import settings

    raw = settings.FAILOVER_RULES_JSON
    if not raw.strip():
        return {}
    try:
        rules = orjson.loads(raw)
        if not isinstance(rules, dict):
            raise TypeError("not an object")
        return {str(k): [str(t) for t in v] for k, v in rules.items() if isinstance(v, list)}
    except (orjson.JSONDecodeError, TypeError) as exc:
        log.error("FAILOVER_RULES_JSON is ignored: %s", exc)
        return {}


def load_config():
    """(targets, aliases, undecryptable, pools): `undecryptable` maps each enabled provider whose stored key
    this process cannot decrypt to its extra model ids; those are not routed to, and said so loudly. `pools`:
    Pools of the configs with more than their own key (key_pool.py)."""
    undecryptable: dict[str, tuple[str, ...]] = {}
    pools = Pools()
    return load_targets(undecryptable, pools), load_aliases(), undecryptable, pools


class Pools:
    """The key pools of the loaded configs: provider id -> KeyPool (only where a call has a choice, or where the
    config's own key was rejected and another serves), and the rejected keys as (provider name, label)."""

    def __init__(self) -> None:
        self.by_id: dict[int, KeyPool] = {}
        self.rejected: list[tuple[str, str]] = []

    def add(self, target: Target, usable: list[Target], rejected: list[str]) -> None:
        self.rejected += [(target.name, label) for label in rejected]
        if len(usable) > 1 or (usable and usable[0] != target):
            self.by_id[target.id] = KeyPool(usable)


def load_targets(undecryptable: dict | None = None, pools: Pools | None = None) -> list[Target]:
    from providers.models import ProviderConfig

    close_old_connections()
    targets = []
    for config in ProviderConfig.objects.filter(enabled=True).order_by("id").prefetch_related("extra_keys"):
        try:
            target = config.as_target()
            if pools is not None:
                pools.add(target, *config.key_pool())
            targets.append(target)
        except ValueError:
            log.error("provider %s: its stored API key cannot be decrypted with GOMODEL_ENCRYPTION_KEYS "
                      "(written by a replica with other keys?); its requests fail with 503 and "
                      "/health/ready reports it", config.name)
            if undecryptable is not None:
                undecryptable[config.name] = tuple(config.extra_models)
    return targets


class ModelRegistry:
    def __init__(self, client):
        self.client = client
        self.targets: dict[str, Target] = {}
        self.models: dict[str, list[str]] = {}
        self.aliases: dict[str, list[tuple[str, int]]] = {}
        self.undecryptable: dict[str, tuple[str, ...]] = {}  # provider name -> its extra model ids
        self.failover: dict[str, list[str]] = {}
        self.pools = Pools()
        self.loaded = False
        self._generation = 0  # bumped by invalidate(): a reload that straddles it is not taken as current
        self._last_refresh = 0.0
        self._load_lock = asyncio.Lock()
        self._refresh_task: asyncio.Task | None = None
        self._rr: dict[str, dict[str, int]] = {}  # smooth weighted round-robin state per alias
        self._known: dict[str, tuple[list, frozenset]] = {}  # per provider: its model list, as a set

    async def ensure_loaded(self):
        if not self.loaded:
            async with self._load_lock:
                if not self.loaded:
                    await self.reload()

    async def reload(self):
        """Re-read the configs (after a change in admin), then their model lists."""
        generation = self._generation
        targets, aliases, undecryptable, pools = await sync_to_async(load_config, thread_sensitive=True)()
        self.targets = {t.name: t for t in targets}
        self.pools = pools
        self.undecryptable = undecryptable
        self.aliases = aliases
        self.failover = load_failover_rules()
        self.models = {t.name: list(t.extra_models) + [m for m in self.models.get(t.name, [])
                                                       if m not in t.extra_models] for t in targets}
        self.loaded = generation == self._generation  # else a change landed mid-read: reload next time
        self._rr.clear()
        self.refresh_soon()

    def invalidate(self):
        self.loaded = False
        self._generation += 1

    async def settled(self):
        """Wait for a model-list fetch under way (after a reload), so a listing is complete."""
        if self._refresh_task is not None and not self._refresh_task.done():
            await asyncio.shield(self._refresh_task)

    def refresh_soon(self):
        """Start fetching the model lists without waiting; a miss awaits the fetch under way."""
        if self._refresh_task is None or self._refresh_task.done():
            self._refresh_task = asyncio.ensure_future(self._refresh_all())

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
        pool = self.pools.by_id.get(target.id)
        if pool is not None:  # the pool's first usable key: the config's own may have been rejected
            target = pool.members[0]
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

    def knows(self, provider: str, model: str) -> bool:
        """Whether `model` is on `provider`'s list (what /metrics may name; anything else is "other").
        Once per request: a set, rebuilt when the list is replaced (a reload or refresh makes a new one)."""
        models = self.models.get(provider)
        if models is None:
            return False
        known = self._known.get(provider)
        if known is None or known[0] is not models:
            known = self._known[provider] = (models, frozenset(models))
        return model in known[1]

    def split(self, model: str) -> tuple[Target, str] | None:
        """`provider/model`, when the prefix names a configured provider."""
        prefix, sep, rest = model.partition("/")
        if sep and rest and prefix in self.targets:
            return self.targets[prefix], rest
        return None

    def alias_order(self, alias: str, is_open) -> list[str]:
        """The alias's targets in the order to try: the next weighted round-robin pick among targets
        whose circuit is closed, then the others by weight (failover order)."""
        entries = self.aliases[alias]
        live = [(ref, w) for ref, w in entries if (t := self.split(ref)) is not None and not is_open(t[0].id)]
        pool = live or entries
        state = self._rr.setdefault(alias, {})
        total = sum(w for _, w in pool)
        best = None
        for ref, weight in pool:
            state[ref] = state.get(ref, 0) + weight
            if best is None or state[ref] > state[best]:
                best = ref
        assert best is not None  # an alias has at least one target
        state[best] -= total
        rest = sorted((e for e in entries if e[0] != best), key=lambda e: -e[1])
        return [best] + [ref for ref, _ in rest]

    def listing(self) -> list[tuple[Target, str]]:
        return [(t, m) for name, t in self.targets.items() for m in self.models.get(name, ())]
