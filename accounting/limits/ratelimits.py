"""Rate limits' shared state in Redis: the Lua scripts (run atomically, on Redis's own clock, so the
count is exact across every gateway process sharing the Redis), key names and the reading of a
script's answer. The gateway (gomodel/gateway/limits.py) admits requests with them; the admin and
the management API read the current usage (`current_usage`, which consumes nothing).

Requests and tokens per minute are GCRA (the generic cell rate algorithm): a limit of N per minute is one
"theoretical arrival time" (TAT) per scope; a unit costs 60 s / N of it, and a request is admitted when,
after adding its cost, the TAT is at most 60 s ahead of now. Exact in its own terms: a burst of up to N at
once (so "10 of 50 parallel calls" holds exactly), then a smooth refill of one unit every 60 s / N — never
more than N in any 60 s from an idle start, and one value a scope whatever the limit: O(1) per request.
(The sliding log it replaced was exact too but cost Redis a sorted-set walk per scope and request; with
every limit on, ~20 commands a scope: the limits row of `make bench`.)

Per scope (an API key, a tenant) three keys, all in the tenant's hash slot:
  rq    STRING  the requests' TAT (ms, Redis time)
  tk    HASH    '~tat': the tokens' TAT; request id -> tokens it reserved (until it settles or the hash expires)
  conc  ZSET    request id -> expiry time (ms): the requests in flight (an entry whose process died expires)

ADMIT  ARGV: request id, window ms, slot ttl ms, mode ('1' admit, '0' peek), then per scope:
       rpm, tpm, concurrency (-1: none), tokens to reserve.
       Returns {allowed, denied dimension, denied scope (1-based), retry ms, then per scope:
       requests remaining, requests reset ms, tokens remaining, tokens reset ms, in flight}.
SETTLE ARGV: request id, tokens actually used. KEYS: per scope tk, conc. Gives back what the request reserved
       beyond what it used (its reservation is still held, i.e. within the window), frees the slot.
BATCH  several SETTLEs and ADMITs in one call (see below): what the gateway sends, once per event-loop tick.
BEAT   ARGV: slot ttl ms, then one request id per KEY (a conc key): pushes live slots' expiry forward.
"""

import hashlib
import logging
from dataclasses import dataclass

import redis

log = logging.getLogger(__name__)

CORE = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- One GCRA dimension: limit per window, cost units now. Returns allowed, the TAT if admitted, units remaining
-- after it, ms until the TAT is back to now (reset), ms to wait before it would fit (retry).
local function gcra(tat, now, window, limit, cost)
  local interval = window / limit
  local base = math.max(tat, now)
  local new_tat = base + cost * interval
  local allowed = new_tat - now <= window
  local used = allowed and new_tat or base
  local remaining = math.floor((window - (used - now)) / interval)
  return allowed, new_tat, remaining, math.ceil(used - now), math.ceil(new_tat - window - now)
end

-- scopes: list of {rq, tk, conc, rpm, tpm, cl, need}; limits -1 = none.
-- Returns {allowed, denied dimension, denied scope, retry ms, then 5 values per scope}.
local function admit_one(now, window, ttl, id, admit, scopes)
  local out = {}
  local denied, denied_scope, retry = '', 0, 0
  local tats = {}
  for s, sc in ipairs(scopes) do
    local r_rem, r_reset, t_rem, t_reset, flying = -1, 0, -1, 0, 0
    local cost = admit and 1 or 0
    if sc.rpm >= 0 then
      local ok, tat, rem, reset, wait = gcra(tonumber(redis.call('GET', sc.rq) or '0'), now, window, sc.rpm, cost)
      r_rem, r_reset = rem, reset
      tats[s] = {rq = tat}
      if admit and not ok and denied == '' then denied, denied_scope, retry = 'requests', s, wait end
    else
      tats[s] = {}
    end
    if sc.tpm >= 0 then
      if sc.need > sc.tpm then sc.need = sc.tpm end  -- larger than the limit: waits for an idle minute
      local need = admit and sc.need or 0
      local ok, tat, rem, reset, wait = gcra(tonumber(redis.call('HGET', sc.tk, '~tat') or '0'), now, window,
                                             sc.tpm, need)
      t_rem, t_reset = rem, reset
      tats[s].tk = tat
      if admit and not ok and denied == '' then denied, denied_scope, retry = 'tokens', s, wait end
    end
    if sc.cl >= 0 then
      flying = redis.call('ZCARD', sc.conc)
      if not admit or flying + 1 > sc.cl then  -- expired slots (dead processes) matter only at the limit
        redis.call('ZREMRANGEBYSCORE', sc.conc, '-inf', now)
        flying = redis.call('ZCARD', sc.conc)
      end
      if admit and flying + 1 > sc.cl and denied == '' then
        denied, denied_scope, retry = 'concurrency', s, 1000
      end
    end
    out[#out+1] = r_rem
    out[#out+1] = r_reset
    out[#out+1] = t_rem
    out[#out+1] = t_reset
    out[#out+1] = flying
  end
  local allowed = 0
  if admit and denied == '' then
    allowed = 1
    for s, sc in ipairs(scopes) do
      local base = 5 * (s - 1)
      if sc.rpm >= 0 then
        redis.call('SET', sc.rq, string.format('%.3f', tats[s].rq), 'PX', window + 1000)
      end
      if sc.tpm >= 0 then
        redis.call('HSET', sc.tk, '~tat', string.format('%.3f', tats[s].tk), id, sc.need)
        redis.call('PEXPIRE', sc.tk, window + 1000)
      end
      if sc.cl >= 0 then
        redis.call('ZADD', sc.conc, now + ttl, id)
        redis.call('PEXPIRE', sc.conc, ttl + 1000)
        out[base+5] = out[base+5] + 1
      end
    end
  elseif admit then  -- refused: the state as it stands (nothing was counted)
    for s, sc in ipairs(scopes) do
      local base = 5 * (s - 1)
      if sc.rpm >= 0 then
        local _, _, rem, reset = gcra(tonumber(redis.call('GET', sc.rq) or '0'), now, window, sc.rpm, 0)
        out[base+1], out[base+2] = rem, reset
      end
      if sc.tpm >= 0 then
        local _, _, rem, reset = gcra(tonumber(redis.call('HGET', sc.tk, '~tat') or '0'), now, window, sc.tpm, 0)
        out[base+3], out[base+4] = rem, reset
      end
    end
  end
  local result = {allowed, denied, denied_scope, math.max(0, retry)}
  for i = 1, #out do result[#result+1] = out[i] end
  return result
end

-- What a request reserved beyond what it used goes back to the tokens' TAT (the hash still holding its
-- reservation means it is within the window); its concurrency slot is freed.
local function settle_one(id, used, tk, conc, window, tpm)
  local held = redis.call('HGET', tk, id)
  if held then
    redis.call('HDEL', tk, id)
    local unused = tonumber(held) - used
    local tat = tonumber(redis.call('HGET', tk, '~tat') or '0')
    if unused ~= 0 and tat > 0 and tpm > 0 then
      redis.call('HSET', tk, '~tat', string.format('%.3f', tat - unused * window / tpm))
    end
  end
  redis.call('ZREM', conc, id)
end
"""

ADMIT = CORE + """
local scopes = {}
for s = 1, #KEYS / 3 do
  scopes[s] = {rq = KEYS[3*s-2], tk = KEYS[3*s-1], conc = KEYS[3*s],
               rpm = tonumber(ARGV[4*s+1]), tpm = tonumber(ARGV[4*s+2]), cl = tonumber(ARGV[4*s+3]),
               need = tonumber(ARGV[4*s+4])}
end
return admit_one(now_ms(), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[1], ARGV[4] == '1', scopes)
"""

SETTLE = CORE + """
for s = 1, #KEYS / 2 do
  settle_one(ARGV[1], tonumber(ARGV[2]), KEYS[2*s-1], KEYS[2*s], tonumber(ARGV[3]), tonumber(ARGV[3 + s]))
end
return 1
"""

# Many requests' settles and admissions in one call (a gateway process sends those of one event-loop tick
# together): each is still decided on its own, in order, exactly as ADMIT/SETTLE would.
# ARGV: window ms, slot ttl ms, the ops (one string, space-separated). KEYS: the scopes' three keys
# each; an op names a scope by the index of its first key.  settle: 'S', id, used, n, then n pairs of
# (scope index, tpm or -1).
# admit: 'A', id, n, then per scope: index, rpm, tpm, concurrency, tokens.  Returns one ADMIT answer
# per admit, in order.
BATCH = CORE + """
local now = now_ms()
local window, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local results = {}
local ops = {}  -- one space-separated string: packing one argument costs the client less than hundreds
for word in string.gmatch(ARGV[3], '%S+') do ops[#ops+1] = word end
local i = 1
while i <= #ops do
  local op, id = ops[i], ops[i+1]
  if op == 'S' then
    local used, n = tonumber(ops[i+2]), tonumber(ops[i+3])
    for j = 1, n do
      local k = tonumber(ops[i+2+2*j])
      settle_one(id, used, KEYS[k+1], KEYS[k+2], window, tonumber(ops[i+3+2*j]))
    end
    i = i + 4 + 2 * n
  else
    local n = tonumber(ops[i+2])
    local scopes = {}
    for j = 1, n do
      local b = i + 3 + 5 * (j - 1)
      local k = tonumber(ops[b])
      scopes[j] = {rq = KEYS[k], tk = KEYS[k+1], conc = KEYS[k+2], rpm = tonumber(ops[b+1]),
                   tpm = tonumber(ops[b+2]), cl = tonumber(ops[b+3]), need = tonumber(ops[b+4])}
    end
    results[#results+1] = admit_one(now, window, ttl, id, true, scopes)
    i = i + 3 + 5 * n
  end
end
return results
"""

BEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', now + ttl, ARGV[i+1])
  redis.call('PEXPIRE', KEYS[i], ttl + 1000)
end
return 1
"""


WINDOW_MS = 60_000
NO_LIMIT = -1
DIMENSIONS = ("requests", "tokens", "concurrency")


@dataclass(frozen=True)
class Scope:
    """One counted party: an API key, a tenant, one of its end users or one of its labels, with its limits
    (None: no limit)."""

    kind: str  # "key", "tenant", "user" or "label"
    base: str  # the Redis key prefix of its four keys
    rpm: int | None
    tpm: int | None
    concurrency: int | None
    name: str = ""  # a label's name:value (named in the 429; never a metric label)

    @property
    def label(self) -> str:
        if self.kind in ("label", "provider", "model"):
            return f"{self.kind} {self.name}"
        return {"key": "API key", "user": "end user"}.get(self.kind, "tenant")

    @property
    def limited(self) -> bool:
        return self.rpm is not None or self.tpm is not None or self.concurrency is not None

    def keys(self) -> list[str]:
        return [f"{self.base}:rq", f"{self.base}:tk", f"{self.base}:conc"]

    def args(self, tokens: int) -> list[int]:
        return [NO_LIMIT if v is None else v for v in (self.rpm, self.tpm, self.concurrency)] + [tokens]

    def limit(self, dimension: str) -> int | None:
        return {"requests": self.rpm, "tokens": self.tpm, "concurrency": self.concurrency}[dimension]


def scope_base(prefix: str, tenant_id: int, key_id: int | None = None) -> str:
    # The tenant id as a hash tag: a key's and its tenant's counters share a Redis Cluster slot.
    return f"{prefix}:{{t{tenant_id}}}:" + (f"k{key_id}" if key_id is not None else "t")


def key_scope(prefix, tenant_id, key_id, rpm, tpm, concurrency) -> Scope:
    return Scope("key", scope_base(prefix, tenant_id, key_id), rpm, tpm, concurrency)


def tenant_scope(prefix, tenant_id, rpm, tpm, concurrency) -> Scope:
    return Scope("tenant", scope_base(prefix, tenant_id), rpm, tpm, concurrency)


def user_scope(prefix, tenant_id, user: str, rpm, tpm) -> Scope:
    """An end user of a tenant (across its keys): named by a digest, so any printable id makes a short, plain key."""
    digest = hashlib.blake2b(user.encode(), digest_size=12).hexdigest()
    return Scope("user", f"{prefix}:{{t{tenant_id}}}:u{digest}", rpm, tpm, None)


def label_scope(prefix, tenant_id, label: str, rpm, tpm) -> Scope:
    """Every request of a tenant carrying one label (`name:value`), across its keys."""
    digest = hashlib.blake2b(label.encode(), digest_size=12).hexdigest()
    return Scope("label", f"{prefix}:{{t{tenant_id}}}:l{digest}", rpm, tpm, None, label)


def provider_scope(prefix, config_id: int, name: str, rpm, tpm, concurrency) -> Scope:
    """A provider config's own quota, shared by every tenant (its account's limit at the provider)."""
    return Scope("provider", f"{prefix}:{{p{config_id}}}:p", rpm, tpm, concurrency, name)


def model_scope(prefix, config_id: int, name: str, model: str, rpm, tpm, concurrency) -> Scope:
    """One model's quota at a provider config (`name/model`), shared by every tenant; named by a digest."""
    digest = hashlib.blake2b(model.encode(), digest_size=12).hexdigest()
    return Scope("model", f"{prefix}:{{p{config_id}}}:m{digest}", rpm, tpm, concurrency, f"{name}/{model}")


@dataclass
class Outcome:
    """What ADMIT answered: whether the request is in, which limit refused it, and per scope the state."""

    allowed: bool
    denied: str  # "requests" | "tokens" | "concurrency" | ""
    denied_scope: Scope | None
    retry_ms: int
    state: list[dict]  # per scope: {dimension: {"limit", "remaining", "reset_ms"}}


def read_outcome(scopes: list[Scope], raw: list) -> Outcome:
    allowed, denied, denied_index, retry = int(raw[0]), raw[1], int(raw[2]), int(raw[3])
    if isinstance(denied, bytes):
        denied = denied.decode()
    state = []
    for i, scope in enumerate(scopes):
        r_rem, r_reset, t_rem, t_reset, flying = (int(v) for v in raw[4 + 5 * i: 9 + 5 * i])
        state.append({
            "requests": {"limit": scope.rpm, "remaining": max(0, r_rem), "reset_ms": r_reset}
            if scope.rpm is not None else None,
            "tokens": {"limit": scope.tpm, "remaining": max(0, t_rem), "reset_ms": t_reset}
            if scope.tpm is not None else None,
            "concurrency": {"limit": scope.concurrency, "remaining": max(0, scope.concurrency - flying),
                            "reset_ms": None} if scope.concurrency is not None else None,
        })
    return Outcome(bool(allowed), denied or "", scopes[denied_index - 1] if denied_index else None, retry, state)


def admit_args(request_id: str, scopes: list[Scope], tokens: int, slot_ttl_ms: int, admit: bool):
    keys = [k for scope in scopes for k in scope.keys()]
    args = [request_id, WINDOW_MS, slot_ttl_ms, "1" if admit else "0"]
    for scope in scopes:
        args.extend(scope.args(tokens))
    return keys, args


def report(scope: Scope | None, state: dict | None) -> dict | None:
    """One scope's limits as /v1/usage and the management API show them: limit, remaining, reset (s)."""
    if scope is None:
        return None
    out = {}
    for dimension in DIMENSIONS:
        limit = scope.limit(dimension)
        entry = state.get(dimension) if state else None
        reset_ms = entry.get("reset_ms") if entry else None
        out[dimension] = {"limit": limit, "remaining": entry["remaining"] if entry else None,
                          "reset_seconds": round(reset_ms / 1000, 3) if reset_ms is not None else None}
    return out


def current_usage(scopes: list[Scope]) -> list[dict | None]:
    """Each scope's limits and what is left of them now, read from Redis without consuming anything
    (sync, for the admin and the management API); remaining is None when Redis does not answer."""
    from django.conf import settings

    limited = [scope for scope in scopes if scope.limited]
    states: dict[str, dict] = {}
    if limited:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1.0, socket_connect_timeout=1.0)
        try:
            keys, args = admit_args("peek", limited, 0, int(settings.LIMITS_SLOT_TTL * 1000), admit=False)
            outcome = read_outcome(limited, client.eval(ADMIT, len(keys), *keys, *args))
            states = {scope.base: state for scope, state in zip(limited, outcome.state)}
        except redis.RedisError as exc:
            log.warning("could not read the rate-limit counters (%s)", exc)
        finally:
            client.close()
    return [report(scope, states.get(scope.base)) for scope in scopes]
