"""The exact response cache, one for every /v1 call endpoint (chat, embeddings, Messages, Responses), JSON and
streams, hooked into the one pipeline (pipeline/call.py looks up at admission, pipeline/run.py replays a hit
and stores a complete answer).

What is stored is the upstream's own answer — a JSON body, or a stream's SSE events — under a key that names
the target it came from. A hit is replayed through the same protocol code as a miss (`Exchange.read`, or the
protocol's stream writer fed the stored events), so it is the same protocol's answer, the per-request parts
(the Responses id, a chat client's usage chunk, `provider`) made for this request, and its usage is what the
replayed answer reports (tokens as served). Only a 200 whose answer was read or whose stream completed is
stored: never an error, a cut or broken stream, a refusal, a `response.failed`.

The key (SHA-256): the endpoint, the tenant (a cache is per tenant), the resolved provider (name and base URL)
and model, and the final upstream request — its body with JSON canonicalised (members sorted, no whitespace)
minus the fields in IGNORED_FIELDS, plus the protocol headers that change an answer (`anthropic-version`,
`anthropic-beta`). The upstream request is built once, for the key, and reused for the call itself.

Coalescing: concurrent identical misses make one upstream call. In one process the first is the leader and
the others wait on its future; across replicas the leader holds a short Redis lease (RESPONSE_CACHE_LEASE_SECONDS,
renewed while it runs) and the others poll for the entry. The leader stores its answer before it answers, and
only then lets go; a leader that fails (an error, a cut stream, a refusal by its limits) stores nothing: each
follower then goes upstream itself (no failure is fanned out).
"""

import asyncio
import hashlib
import itertools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from django.conf import settings
from prometheus_client import Counter, Histogram

from providers.adapters import adapter_for
from providers.base import UpstreamError

log = logging.getLogger(__name__)

# Fields of an upstream body that never change the answer: not part of the key.
IGNORED_FIELDS = ("user", "metadata", "stream_options", "store", "prompt_cache_key", "safety_identifier")
# Upstream request headers that do change it (the rest are credentials and transport).
KEYED_HEADERS = ("anthropic-version", "anthropic-beta")
FORMAT = "v1"  # in every key: a change of the stored format starts a new cache

HIT, MISS, BYPASS = b"hit-exact", b"miss", b"bypass"
HEADER = b"x-gomodel-cache"

LOOKUPS = Counter("gomodel_cache_lookups", "Calls of a key with a response cache, by result (hit, miss, bypass).",
                  ["endpoint", "result"])
STORED = Counter("gomodel_cache_stored", "Answers stored in the response cache.", ["endpoint"])
COALESCED = Counter("gomodel_cache_coalesced", "Calls that waited for an identical call in flight, by outcome "
                    "(hit: they got its answer; retry: it failed, they went upstream themselves).", ["outcome"])
LOOKUP_SECONDS = Histogram("gomodel_cache_lookup_seconds", "Time to look an answer up in the response cache.",
                           buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5))


_warned = {"at": 0.0}


def _warn(message: str, *args) -> None:
    """A cache that does not answer is logged once a minute, not on every request."""
    now = time.monotonic()
    if now - _warned["at"] > 60:
        _warned["at"] = now
        log.warning(message, *args)


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """A key's response cache, its tenant's where the key sets nothing (accounting.models' cache_* fields)."""

    mode: str  # "exact", or "semantic" (exact first, then semantic_cache/)
    ttl: int  # seconds; also the most x-gomodel-cache-ttl may ask for
    max_bytes: int  # the largest answer stored
    sampled: bool  # cache answers sampled with temperature > 0 and no seed too
    similarity: float = 1.0  # semantic: the least cosine similarity of a hit


def policy_of(key) -> CachePolicy | None:
    """The policy of an ApiKey row (its tenant loaded); None: no cache."""
    tenant = key.tenant
    mode = key.cache_mode or tenant.cache_mode
    if mode not in ("exact", "semantic"):
        return None
    return CachePolicy(
        mode=mode,
        ttl=key.cache_ttl_seconds or tenant.cache_ttl_seconds or settings.RESPONSE_CACHE_TTL,
        max_bytes=key.cache_max_entry_bytes or tenant.cache_max_entry_bytes or settings.RESPONSE_CACHE_MAX_ENTRY_BYTES,
        sampled=key.cache_sampled if key.cache_sampled is not None else tenant.cache_sampled,
        similarity=key.cache_similarity or tenant.cache_similarity or settings.SEMANTIC_CACHE_THRESHOLD,
    )


def canonical_body(body: bytes | None) -> bytes:
    if not body:
        return b""
    data = orjson.loads(body)
    if isinstance(data, dict):
        for name in IGNORED_FIELDS:
            data.pop(name, None)
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def cache_key(endpoint: str, tenant_id, target, model: str, upstream) -> str:
    digest = hashlib.sha256()
    headers = {name.lower(): value for name, value in upstream.headers.items()}
    for part in (FORMAT, endpoint, str(tenant_id), target.name, target.base_url, model,
                 *(f"{name}={headers.get(name, '')}" for name in KEYED_HEADERS)):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(canonical_body(upstream.body))
    return digest.hexdigest()


def directives(req) -> tuple[bool, bool, int | None]:
    """(read, write, ttl asked for) from Cache-Control (no-cache: store but do not look up; no-store: neither)
    and x-gomodel-cache-ttl (seconds; 0: do not store)."""
    read = write = True
    control = req.headers.get(b"cache-control")
    if control:
        for part in control.decode("latin-1").lower().split(","):
            part = part.strip()
            if part == "no-store":
                read = write = False
            elif part == "no-cache":
                read = False
    ttl = None
    value = req.headers.get(b"x-gomodel-cache-ttl")
    if value is not None and value.strip().isdigit():
        ttl = int(value.strip())
        if ttl == 0:
            write = False
    return read, write, ttl


def deterministic(body: dict) -> bool:
    """Temperature 0 or absent, or a seed: what the default policy caches."""
    temperature = body.get("temperature")
    return temperature in (None, 0) or body.get("seed") is not None


# The lookups of one event-loop tick in one round trip: for each, the entry, or — for a call that may store its
# answer — the coalescing lease (holding this call's token) when no other replica holds it. KEYS: entry, lease, …;
# ARGV: the lease's life in ms, then per lookup the token ('' : no lease). Returns entry, taken, … (no entry: nil).
LOOKUP = """
local out = {}
for i = 1, #KEYS, 2 do
  local entry = redis.call('GET', KEYS[i])
  local token = ARGV[(i + 1) / 2 + 1]
  local taken = 0
  if not entry and token ~= '' and redis.call('SET', KEYS[i + 1], token, 'NX', 'PX', ARGV[1]) then taken = 1 end
  out[i] = entry or false
  out[i + 1] = taken
end
return out
"""
# The stores of one tick: each entry, then its lease let go of when it still holds the leader's token (a lease
# that expired and was taken by another replica is left alone). KEYS: entry, lease, …; ARGV: entry, ttl, token
# ('': none), ….
STORE = """
for i = 1, #KEYS, 2 do
  local j = (i - 1) / 2 * 3
  redis.call('SET', KEYS[i], ARGV[j + 1], 'EX', ARGV[j + 2])
  if ARGV[j + 3] ~= '' and redis.call('GET', KEYS[i + 1]) == ARGV[j + 3] then redis.call('DEL', KEYS[i + 1]) end
end
return #KEYS / 2
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _entry(raw: bytes) -> "Entry | None":
    try:
        return Entry(raw)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


class Entry:
    """A stored answer: the upstream's JSON body, or its stream's (event, data) pairs."""

    __slots__ = ("content", "events", "raw")

    def __init__(self, raw: bytes):
        data = orjson.loads(raw)
        self.raw = raw
        self.content = data["c"].encode() if "c" in data else None
        self.events = [(event, text.encode()) for event, text in data["e"]] if "e" in data else None
        if self.content is None and self.events is None:
            raise ValueError("an empty cache entry")

    @staticmethod
    def encode_json(content: bytes) -> bytes:
        return orjson.dumps({"c": content.decode()})

    @staticmethod
    def encode_events(events: list[tuple[str | None, bytes]]) -> bytes:
        return orjson.dumps({"e": [(event, data.decode()) for event, data in events]})


class Tape:
    """A stream's upstream events as they pass (what a hit replays), up to the policy's size."""

    __slots__ = ("events", "size", "limit")

    def __init__(self, limit: int):
        self.events: list[tuple[str | None, bytes]] | None = []  # None: too large, not stored
        self.size = 0
        self.limit = limit

    def add(self, event: str | None, data: bytes) -> None:
        if self.events is None:
            return
        self.size += len(data) + 16
        if self.size > self.limit:
            self.events = None  # too large to keep: this answer is not stored
            return
        self.events.append((event, data))


class CallCache:
    """One call's use of the cache: what it may do (read, write, ttl), its key, its hit, the upstream
    requests built for it (`build`, memoised per target), the stream tape, and whether it leads a coalesced
    group (then `finish` hands its stored answer, or nothing, to the followers)."""

    __slots__ = ("cache", "builder", "tenant_id", "read", "write", "ttl", "max_bytes", "label", "key", "hit",
                 "built", "tape", "stored", "endpoint", "first", "leader", "lease", "semantic")

    def __init__(self, cache, protocol, builder, tenant_id, policy: CachePolicy, read, write, ttl):
        self.cache = cache
        self.builder = builder  # (adapter, target, model) -> the upstream request (the Call's)
        self.endpoint = protocol.endpoint
        self.tenant_id = tenant_id
        self.read, self.write = read, write
        self.ttl = policy.ttl if ttl is None else min(ttl, policy.ttl)
        self.max_bytes = policy.max_bytes
        self.label = BYPASS
        self.key: str | None = None
        self.hit: Entry | None = None
        self.built: dict = {}
        self.tape: Tape | None = None
        self.stored: bytes | None = None  # the entry this call stored (bytes)
        # The future identical calls in this process wait on, while this call leads.
        self.leader: asyncio.Future[bytes | None] | None = None
        # (name, token) of this call's Redis lease, while it leads across replicas.
        self.lease: tuple[str, str] | None = None
        self.first: tuple[Any, str] | None = None  # (target, model) the key was made for
        # semantic_cache: keeps the answer this call stores under its key for similar requests too (entry, ttl).
        self.semantic: Callable[[bytes, int], None] | None = None

    def build(self, adapter, target, model):
        """The protocol's upstream request for this target, built once (the key is made from it)."""
        memo = (target.id, target.name, target.key_label, model)  # each key of a pool: its own headers
        upstream = self.built.get(memo)
        if upstream is None:
            upstream = self.built[memo] = self.builder(adapter, target, model)
        return upstream

    def key_for(self, target, model) -> str | None:
        if self.first == (target, model):
            return self.key
        upstream = self.built.get((target.id, target.name, target.key_label, model))
        return cache_key(self.endpoint, self.tenant_id, target, model, upstream) if upstream is not None else None

    def recorder(self) -> Tape | None:
        if self.write:
            self.tape = Tape(self.max_bytes)
        return self.tape

    async def store_json(self, target, model, content: bytes, answer) -> None:
        if not self.write or len(content) > self.max_bytes:
            return
        if isinstance(answer, dict) and answer.get("status") not in (None, "completed"):
            return  # a response that failed or is incomplete
        try:
            entry = Entry.encode_json(content)
        except UnicodeDecodeError:
            return
        await self._store(target, model, entry)

    async def store_stream(self, target, model) -> None:
        tape = self.tape
        if not self.write or tape is None or tape.events is None:
            return
        try:
            entry = Entry.encode_events(tape.events)
        except UnicodeDecodeError:
            return
        await self._store(target, model, entry)

    async def _store(self, target, model, entry: bytes) -> None:
        """Stored before the client has the end of its answer: a client that asks again at once finds it."""
        key = self.key_for(target, model)
        if key is None:
            return
        self.stored = entry if key == self.key else None
        await self.cache.put(key, entry, self.ttl, self.endpoint, lease=self.lease if key == self.key else None)
        if self.semantic is not None and key == self.key:  # the scope was made for the first target, as the key
            self.semantic(entry, self.ttl)

    def finish(self) -> None:
        """The call ended (or was refused): followers get its stored answer, or None and go upstream themselves."""
        if self.leader is not None:
            self.cache.release(self.key, self.leader, self.stored, self.lease)
            self.leader = self.lease = None


class ResponseCache:
    """Per process (per Runtime): the Redis client of the cache and the calls leading a coalesced group."""

    def __init__(self, redis):
        self.redis = redis
        self.leaders: dict[str, asyncio.Future] = {}
        self._tasks: set = set()
        # What the next round trip carries (one per event-loop tick, like the limiter's): lookups and stores.
        self._lookups: list[tuple[str, str, asyncio.Future]] = []  # entry name, lease token, answer
        self._stores: list[tuple[str, bytes, int, tuple | None, asyncio.Future]] = []  # name, entry, ttl, lease
        self._flushing: dict[str, asyncio.Task | None] = {"lookups": None, "stores": None}
        self.held: dict[str, str] = {}  # the leases this process holds, name → token (one task renews them all)
        self._tokens = itertools.count()
        self._holder = f"{os.getpid()}-{os.urandom(4).hex()}-"  # a lease's token: this process, then a counter
        self._scripts: dict = {}
        self._renewer: asyncio.Task | None = None

    @classmethod
    def for_runtime(cls, redis):
        url = settings.RESPONSE_CACHE_REDIS_URL
        if url and url != settings.REDIS_URL:
            redis = aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(
                url, max_connections=64, timeout=5.0, socket_connect_timeout=2.0, socket_timeout=None))
        return cls(redis)

    def name(self, key: str) -> str:
        return f"{settings.RESPONSE_CACHE_PREFIX}:{key}"

    async def begin(self, req, principal, protocol, chain, builder) -> CallCache:
        """At admission: decide what this call may do with the cache, make its key and look it up (a miss waits
        for an identical call in flight, if there is one)."""
        policy = principal.cache
        read, write, ttl = directives(req)
        call = CallCache(self, protocol, builder, principal.tenant_id, policy, read, write, ttl)
        body = protocol.body
        if not (policy.sampled or deterministic(body)) or (protocol.stream and (body.get("n") or 1) > 1):
            call.read = call.write = False
        if not (call.read or call.write):
            LOOKUPS.labels(call.endpoint, "bypass").inc()
            return call
        target, model = chain[0]
        try:
            upstream = call.build(adapter_for(target.wire), target, model)
            call.key = cache_key(call.endpoint, principal.tenant_id, target, model, upstream)
        except (UpstreamError, ValueError, TypeError):  # the send reports what cannot be built
            call.read = call.write = False
            LOOKUPS.labels(call.endpoint, "bypass").inc()
            return call
        call.first = (target, model)
        if not call.read:
            LOOKUPS.labels(call.endpoint, "bypass").inc()
            return call
        try:
            call.hit = await self.lookup(call)
        except BaseException:
            call.finish()  # cancelled while leading: the calls waiting on this one go upstream themselves
            raise
        call.label = HIT if call.hit is not None else MISS
        LOOKUPS.labels(call.endpoint, "hit" if call.hit is not None else "miss").inc()
        return call

    # -- looking up and coalescing ------------------------------------------------------------------------

    async def lookup(self, call: CallCache) -> Entry | None:
        """A stored answer, or one from an identical call in flight (here or on another replica); None: this call
        goes upstream — as the leader of the identical calls that come meanwhile, or after a leader failed."""
        key = call.key
        if key is None:  # begin makes the key before it looks up
            return None
        waiting = self.leaders.get(key) if call.write else None
        if waiting is not None:  # an identical call in this process leads: no Redis round trip at all
            raw = await asyncio.shield(waiting)
            COALESCED.labels("hit" if raw is not None else "retry").inc()
            return Entry(raw) if raw is not None else None
        started = time.perf_counter()
        token = f"{self._holder}{next(self._tokens)}" if call.write else ""
        raw, leads = await self._get_or_lease(key, token)
        LOOKUP_SECONDS.observe(time.perf_counter() - started)
        if raw is not None:
            return _entry(raw)
        if not call.write:
            return None
        waiting = self.leaders.get(key)
        if waiting is not None and not leads:  # an identical call of the same tick took the lease: wait on it
            raw = await asyncio.shield(waiting)
            COALESCED.labels("hit" if raw is not None else "retry").inc()
            return Entry(raw) if raw is not None else None
        future = asyncio.get_running_loop().create_future()
        self.leaders[key] = call.leader = future  # identical calls in this process now wait on this one
        if leads:
            call.lease = (self.name(key) + ":lease", token)
            self.held[call.lease[0]] = token
            if self._renewer is None or self._renewer.done():
                self._renewer = self._spawn(self._renew())
            return None
        # Another replica leads: wait for its entry while its lease lives (this process's identical calls wait on
        # this one meanwhile, and get what it gets).
        entry = await self._follow(key, time.monotonic() + settings.UPSTREAM_DEADLINE)
        call.leader = None
        self.release(key, future, entry.raw if entry is not None else None, None)
        COALESCED.labels("hit" if entry is not None else "retry").inc()
        return entry

    async def _get_or_lease(self, key: str, token: str) -> tuple[bytes | None, bool]:
        """The entry, or (when this call may store: `token`) the lease if no other replica holds it: in the tick's
        one EVALSHA. Redis down or slow: a miss that leads as if it held the lease (it may: it lets go of it by its
        token), never an error."""
        future = asyncio.get_running_loop().create_future()
        self._lookups.append((self.name(key), token, future))
        self._schedule("lookups", self._flush_lookups)
        try:
            raw, taken = await future
        except Exception as exc:
            _warn("response cache lookup failed (%s); treated as a miss", exc)
            return None, True
        return raw, bool(taken)

    def _schedule(self, what: str, flush) -> None:
        if self._flushing[what] is None:
            self._flushing[what] = self._spawn(flush())

    async def _flush_lookups(self):
        await asyncio.sleep(0)  # let the rest of this tick's calls join
        ops, self._lookups, self._flushing["lookups"] = self._lookups, [], None
        keys: list[str] = []
        args: list[int | str] = [int(settings.RESPONSE_CACHE_LEASE_SECONDS * 1000)]
        for name, token, _ in ops:
            keys += (name, name + ":lease")
            args.append(token)
        try:
            async with asyncio.timeout(settings.RESPONSE_CACHE_TIMEOUT):
                out = await self._script("lookup", LOOKUP)(keys=keys, args=args, client=self.redis)
        except Exception as exc:
            for _, _, future in ops:
                if not future.done():
                    future.set_exception(exc)
            return
        for i, (_, _, future) in enumerate(ops):
            if not future.done():
                future.set_result((out[2 * i], out[2 * i + 1]))

    async def _renew(self):
        """Keep every lease this process holds alive (a long stream outlives RESPONSE_CACHE_LEASE_SECONDS): one
        pipeline every third of the lease; ends when none is held."""
        ms = int(settings.RESPONSE_CACHE_LEASE_SECONDS * 1000)
        while self.held:
            await asyncio.sleep(ms / 3000)
            try:
                async with asyncio.timeout(1.0):
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for name in list(self.held):
                            pipe.pexpire(name, ms)  # a lease lost to another replica meanwhile lives a little longer
                        await pipe.execute()
            except asyncio.CancelledError:
                raise
            except Exception:
                pass

    async def _follow(self, key: str, deadline: float) -> Entry | None:
        """Poll for the entry while another replica's lease lives; None when it is gone without an entry."""
        name = self.name(key)
        delay = 0.005
        while time.monotonic() < deadline:
            try:
                async with asyncio.timeout(1.0):
                    async with self.redis.pipeline(transaction=True) as pipe:  # both at one instant
                        raw, lease = await pipe.get(name).exists(name + ":lease").execute()
            except Exception as exc:
                _warn("response cache follower lost Redis (%s); going upstream", exc)
                return None
            if raw is not None:
                return _entry(raw)
            if not lease:
                return None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
        return None

    def release(self, key: str, future: asyncio.Future, entry: bytes | None, lease) -> None:
        """A leader's call ended: its followers here get `entry` (None: it stored nothing, they go upstream).
        Its lease went with its stored answer (`put`); one still held (nothing stored) is dropped now."""
        if self.leaders.get(key) is future:
            del self.leaders[key]
        if not future.done():
            future.set_result(entry)
        if lease is not None and lease[0] in self.held:  # nothing stored (a stored answer let go of it)
            del self.held[lease[0]]
            self._spawn(self._drop_lease(lease))

    async def _drop_lease(self, lease: tuple[str, str]):
        try:
            async with asyncio.timeout(2.0):
                await self._script("release", RELEASE)(keys=[lease[0]], args=[lease[1]], client=self.redis)
        except Exception:  # it expires by itself
            pass

    def _script(self, name: str, source: str):
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self.redis.register_script(source)
        return script

    # -- storing ------------------------------------------------------------------------------------------

    async def put(self, key: str, entry: bytes, ttl: int, endpoint: str, lease: tuple | None = None) -> None:
        """Store an answer in the tick's one pipeline (within RESPONSE_CACHE_TIMEOUT; a cache that does not answer
        stores nothing) and let go of `lease` (this call leads) after it, so a follower never sees neither."""
        if ttl <= 0:
            return
        if lease is not None:
            self.held.pop(lease[0], None)
        future = asyncio.get_running_loop().create_future()
        self._stores.append((self.name(key), entry, ttl, lease, future))
        self._schedule("stores", self._flush_stores)
        try:
            await future
        except Exception as exc:
            _warn("response cache could not store an answer (%s)", exc)
            if lease is not None:
                self._spawn(self._drop_lease(lease))  # followers elsewhere go upstream now, not when it expires
            return
        STORED.labels(endpoint).inc()

    async def _flush_stores(self):
        await asyncio.sleep(0)
        ops, self._stores, self._flushing["stores"] = self._stores, [], None
        keys: list[str] = []
        args: list[bytes | int | str] = []
        for name, entry, ttl, lease, _ in ops:
            keys += (name, name + ":lease")
            args += (entry, ttl, lease[1] if lease is not None else "")
        try:
            async with asyncio.timeout(settings.RESPONSE_CACHE_TIMEOUT):
                await self._script("store", STORE)(keys=keys, args=args, client=self.redis)
        except Exception as exc:
            for *_, future in ops:
                if not future.done():
                    future.set_exception(exc)
            return
        for *_, future in ops:
            if not future.done():
                future.set_result(None)

    def _spawn(self, coroutine) -> asyncio.Task:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self):
        for task in list(self._tasks):
            if not task.done():
                try:
                    await asyncio.wait_for(asyncio.shield(task), 1.0)
                except Exception:
                    task.cancel()
