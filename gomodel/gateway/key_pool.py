"""A provider config's key pool at run time: which of its keys a call uses, and which keys sit out.

A config with one usable key has no pool (the hot path then looks up nothing more than a dict miss). With two
or more, a call goes to one key picked by the conversation it belongs to (`affinity`: the same conversation
keeps one key, so the upstream's prompt cache, which is per account, keeps working), else round-robin; the
others follow in order, for a retry when the first answers 429 or 401/403.

- 429: the key cools down for the answer's Retry-After (KEY_COOLDOWN_DEFAULT when it says nothing), in every
  replica: a Redis key with that TTL (read when a process (re)subscribes) and a message on the invalidation
  channel (every process notes it at once). Asking whether a key cools is a dict lookup in this process, and
  no lookup at all while nothing cools.
- 401/403: the key is rejected: flagged on its row through the audited domain service (every gateway then
  reloads its pools without it), shown in the admin and /health/ready by provider and label.
Secrets: only labels are ever logged, published or stored outside the key's own encrypted column.
"""

import asyncio
import logging
import time
import zlib
from collections.abc import Sequence
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from providers.base import Target

log = logging.getLogger(__name__)
MESSAGE_PREFIX = "keycool:"  # on the invalidation channel: keycool:<provider id>:<label>:<until, Unix time>


def affinity(body: dict[str, Any] | None) -> str | None:
    """What names the conversation a call belongs to, cheaply: OpenAI's `prompt_cache_key` or `user` (chat,
    Responses), Anthropic's `metadata.user_id`. None: nothing does (round-robin)."""
    if not body:
        return None
    for name in ("prompt_cache_key", "user"):
        value = body.get(name)
        if isinstance(value, str) and value:
            return value
    metadata = body.get("metadata")
    if isinstance(metadata, dict):
        value = metadata.get("user_id")
        if isinstance(value, str) and value:
            return value
    return None


class KeyPool:
    """The usable keys of one provider config, each a Target (decrypted once, when the registry loads)."""

    __slots__ = ("members", "_next")

    def __init__(self, members: Sequence[Target]) -> None:
        self.members = tuple(members)
        self._next = 0

    def order(self, body: dict[str, Any] | None, keys: "KeyStates") -> list[Target]:
        """The keys to try, in order: the conversation's (or the next round-robin) key first, then the others;
        cooling and rejected keys left out, unless every key is (then the one cooling the shortest, alone)."""
        members = self.members
        hint = affinity(body)
        if hint is None:
            start = self._next % len(members)
            self._next = start + 1
        else:
            start = zlib.crc32(hint.encode()) % len(members)  # stable across replicas and restarts
        ordered = list(members[start:] + members[:start])
        if not keys.out and not keys.cooling:
            return ordered
        ready = [m for m in ordered if not keys.sits_out(m)]
        return ready or [min(ordered, key=keys.cool_until)]


class KeyStates:
    """Which pool keys sit out in this process: cooling after a 429 (shared through Redis), or rejected (401/403)
    until the registry reloads without them (the Runtime clears `out` on a providers invalidation). One per
    Runtime."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.cooling: dict[tuple[int, str], float] = {}  # (provider id, label) -> until (Unix time)
        self.out: set[tuple[int, str]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    def sits_out(self, target: Target) -> bool:
        name = (target.id, target.key_label)
        if name in self.out:
            return True
        until = self.cooling.get(name)
        if until is None:
            return False
        if until > time.time():
            return True
        del self.cooling[name]
        return False

    def cool_until(self, target: Target) -> float:
        return self.cooling.get((target.id, target.key_label), 0.0)

    def cool(self, target: Target, seconds: float | None) -> None:
        """A 429: this key sits out here at once, and in the other replicas as soon as they hear of it."""
        if seconds is None or seconds <= 0:
            seconds = settings.KEY_COOLDOWN_DEFAULT
        seconds = min(seconds, settings.KEY_COOLDOWN_MAX)
        until = time.time() + seconds
        self.cooling[(target.id, target.key_label)] = until
        self._spawn(self._share(target, until, seconds))

    async def _share(self, target: Target, until: float, seconds: float) -> None:
        name = f"{target.id}:{target.key_label}"
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(f"{settings.KEY_COOLDOWN_PREFIX}:{name}", repr(until), px=max(1, int(seconds * 1000)))
                pipe.publish(settings.INVALIDATION_CHANNEL, f"{MESSAGE_PREFIX}{name}:{until!r}")
                await pipe.execute()
        except Exception as exc:  # this process still honours the cool-down; the others learn the 429 themselves
            log.warning("could not share the cool-down of provider %s key %s (%s)", target.name, target.key_label,
                        type(exc).__name__)

    def heard(self, message: str) -> None:
        """Another process's (or this one's) cool-down, from the invalidation channel."""
        try:
            provider, label, until = message[len(MESSAGE_PREFIX):].split(":", 2)
            self.cooling[(int(provider), label)] = max(float(until), self.cooling.get((int(provider), label), 0.0))
        except ValueError:
            log.warning("ignored a malformed key cool-down message")

    async def load(self, names: list[bytes]) -> None:
        """The cool-downs under way, from their Redis keys (`names`, found by the Runtime's listener)."""
        prefix = f"{settings.KEY_COOLDOWN_PREFIX}:"
        values = await self.redis.mget(names)
        for name, value in zip(names, values):
            if value is not None:
                self.heard(MESSAGE_PREFIX + name.decode()[len(prefix):] + ":" + value.decode())

    def reject(self, target: Target, status: int) -> None:
        """A 401/403: out of this process's pool at once; flagged on its row (audited), once."""
        name = (target.id, target.key_label)
        if name in self.out:
            return
        self.out.add(name)
        log.error("provider %s key %s was rejected by the upstream (HTTP %s): taken out of the pool", target.name,
                  target.key_label, status)
        self._spawn(_flag(target.id, target.key_label, status))

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settled(self) -> None:
        """Wait for the writes under way (tests; shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def _flag(provider_id: int, label: str, status: int) -> None:
    from accounting.provider_configs.services import do_reject_provider_key

    try:
        await sync_to_async(do_reject_provider_key, thread_sensitive=True)(provider_id, label, status)
    except Exception:
        log.exception("could not flag provider %s key %s as rejected", provider_id, label)
