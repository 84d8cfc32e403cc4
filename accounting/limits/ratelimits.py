"""Rate limits' shared state in Redis: the Lua scripts (run atomically, on Redis's own clock, so the
count is exact across every gateway process sharing the Redis), key names and the reading of a
script's answer. The gateway (gomodel/gateway/limits.py) admits requests with them; the admin and
the management API read the current usage (`current_usage`, which consumes nothing).

The window is a sliding log: every admitted request (and its token reservation) is an entry with its
time; an entry older than 60 s no longer counts. Exact at any instant, unlike a fixed window (2x at a
boundary) or a sliding-window counter (an interpolation); GCRA is exact too but admits a burst and
then one request every 60/N s, so a "10 per minute" key could make 19 calls in a minute. The price is
memory proportional to the limit (one sorted-set entry per request in the window), which is small for
per-key limits.

Per scope (an API key, a tenant) three keys, all in the tenant's hash slot:
  log   ZSET  request id -> admission time (ms): the sliding log of requests (and of their reservations)
  tokv  HASH  request id -> tokens it holds, plus '~sum' (the window's total, kept incrementally)
  conc  ZSET  request id -> expiry time (ms): the requests in flight (an entry whose process died expires)

ADMIT  ARGV: request id, window ms, slot ttl ms, mode ('1' admit, '0' peek), then per scope:
       rpm, tpm, concurrency (-1: none), tokens to reserve.
       Returns {allowed, denied dimension, denied scope (1-based), retry ms, then per scope:
       requests remaining, requests reset ms, tokens remaining, tokens reset ms, in flight}.
SETTLE ARGV: request id, tokens actually used. KEYS: per scope tokv, conc. Sets the reservation to the
       real count while it is still in the window, and frees the concurrency slot.
BATCH  several SETTLEs and ADMITs in one call (see below): what the gateway sends, once per event-loop tick.
BEAT   ARGV: slot ttl ms, then one request id per KEY (a conc key): pushes live slots' expiry forward.
"""

import logging
from dataclasses import dataclass

import redis

log = logging.getLogger(__name__)

CORE = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function expire_tokens(tok, tokv, since)
  local old = redis.call('ZRANGEBYSCORE', tok, '-inf', since, 'LIMIT', 0, 5000)
  while #old > 0 do
    local values = redis.call('HMGET', tokv, unpack(old))
    local freed = 0
    for i = 1, #values do freed = freed + (tonumber(values[i]) or 0) end
    redis.call('HDEL', tokv, unpack(old))
    redis.call('ZREM', tok, unpack(old))
    if freed ~= 0 then redis.call('HINCRBY', tokv, '~sum', -freed) end
    if #old < 5000 then break end
    old = redis.call('ZRANGEBYSCORE', tok, '-inf', since, 'LIMIT', 0, 5000)
  end
  return tonumber(redis.call('HGET', tokv, '~sum') or '0')
end

local function reset_in(zset, now, window)
  local newest = redis.call('ZRANGE', zset, -1, -1, 'WITHSCORES')
  if #newest == 0 then return 0 end
  return math.max(0, tonumber(newest[2]) + window - now)
end

-- scopes: list of {log, tokv, conc, rpm, tpm, cl, need}; limits -1 = none.
-- Returns {allowed, denied dimension, denied scope, retry ms, then 5 values per scope}.
local function admit_one(now, window, ttl, id, admit, scopes)
  local since = now - window
  local out = {}
  local denied, denied_scope, retry = '', 0, 0
  for s, sc in ipairs(scopes) do
    local r_rem, r_reset, t_rem, t_reset, flying = -1, 0, -1, 0, 0
    local used_tokens = 0
    if sc.tpm >= 0 then
      used_tokens = expire_tokens(sc.log, sc.tokv, since)  -- drops the log's old entries too
    elseif sc.rpm >= 0 then
      redis.call('ZREMRANGEBYSCORE', sc.log, '-inf', since)
    end
    if sc.rpm >= 0 then
      local used = redis.call('ZCARD', sc.log)
      r_rem = sc.rpm - used
      if admit and used + 1 > sc.rpm and denied == '' then
        denied, denied_scope = 'requests', s
        local oldest = redis.call('ZRANGE', sc.log, 0, 0, 'WITHSCORES')
        retry = #oldest > 0 and (tonumber(oldest[2]) + window - now) or window
      end
    end
    if sc.tpm >= 0 then
      local used = used_tokens
      if sc.need > sc.tpm then sc.need = sc.tpm end  -- larger than the limit: waits for an empty window
      t_rem = sc.tpm - used
      if admit and used + sc.need > sc.tpm and denied == '' then
        denied, denied_scope = 'tokens', s
        -- wait until enough of the oldest reservations have left the window
        local entries = redis.call('ZRANGE', sc.log, 0, 999, 'WITHSCORES')
        local freed = 0
        retry = window
        for i = 1, #entries, 2 do
          freed = freed + (tonumber(redis.call('HGET', sc.tokv, entries[i])) or 0)
          if used - freed + sc.need <= sc.tpm then
            retry = tonumber(entries[i+1]) + window - now
            break
          end
        end
      end
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
  if not admit or denied ~= '' then  -- not admitted: when is each log back to its limit?
    for s, sc in ipairs(scopes) do
      if sc.rpm >= 0 or sc.tpm >= 0 then
        local reset = reset_in(sc.log, now, window)
        if sc.rpm >= 0 then out[5*(s-1)+2] = reset end
        if sc.tpm >= 0 then out[5*(s-1)+4] = reset end
      end
    end
  end
  local allowed = 0
  if admit and denied == '' then
    allowed = 1
    for s, sc in ipairs(scopes) do
      local base = 5 * (s - 1)
      if sc.rpm >= 0 or sc.tpm >= 0 then
        redis.call('ZADD', sc.log, now, id)
        redis.call('PEXPIRE', sc.log, window + 1000)
      end
      if sc.rpm >= 0 then
        out[base+1] = out[base+1] - 1
        out[base+2] = window  -- the newest entry is this one
      end
      if sc.tpm >= 0 then
        redis.call('HSET', sc.tokv, id, sc.need)
        redis.call('HINCRBY', sc.tokv, '~sum', sc.need)
        redis.call('PEXPIRE', sc.tokv, window + 1000)
        out[base+3] = out[base+3] - sc.need
        out[base+4] = window
      end
      if sc.cl >= 0 then
        redis.call('ZADD', sc.conc, now + ttl, id)
        redis.call('PEXPIRE', sc.conc, ttl + 1000)
        out[base+5] = out[base+5] + 1
      end
    end
  end
  local result = {allowed, denied, denied_scope, math.max(0, retry)}
  for i = 1, #out do result[#result+1] = out[i] end
  return result
end

local function settle_one(id, used, tokv, conc)
  local held = redis.call('HGET', tokv, id)
  if held then
    redis.call('HSET', tokv, id, used)
    redis.call('HINCRBY', tokv, '~sum', used - tonumber(held))
  end
  redis.call('ZREM', conc, id)
end
"""

ADMIT = CORE + """
local scopes = {}
for s = 1, #KEYS / 3 do
  scopes[s] = {log = KEYS[3*s-2], tokv = KEYS[3*s-1], conc = KEYS[3*s],
               rpm = tonumber(ARGV[4*s+1]), tpm = tonumber(ARGV[4*s+2]), cl = tonumber(ARGV[4*s+3]),
               need = tonumber(ARGV[4*s+4])}
end
return admit_one(now_ms(), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[1], ARGV[4] == '1', scopes)
"""

SETTLE = CORE + """
for s = 1, #KEYS / 2 do settle_one(ARGV[1], tonumber(ARGV[2]), KEYS[2*s-1], KEYS[2*s]) end
return 1
"""

# Many requests' settles and admissions in one call (a gateway process sends those of one event-loop tick
# together): each is still decided on its own, in order, exactly as ADMIT/SETTLE would.
# ARGV: window ms, slot ttl ms, the ops (one string, space-separated). KEYS: the scopes' three keys
# each; an op names a scope by the index of its first key.  settle: 'S', id, used, n, then n scope indexes.
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
      local k = tonumber(ops[i+3+j])
      settle_one(id, used, KEYS[k+1], KEYS[k+2])
    end
    i = i + 4 + n
  else
    local n = tonumber(ops[i+2])
    local scopes = {}
    for j = 1, n do
      local b = i + 3 + 5 * (j - 1)
      local k = tonumber(ops[b])
      scopes[j] = {log = KEYS[k], tokv = KEYS[k+1], conc = KEYS[k+2], rpm = tonumber(ops[b+1]),
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
    """One counted party: an API key or a tenant, with its limits (None: no limit)."""

    kind: str  # "key" or "tenant"
    base: str  # the Redis key prefix of its four keys
    rpm: int | None
    tpm: int | None
    concurrency: int | None

    @property
    def label(self) -> str:
        return "API key" if self.kind == "key" else "tenant"

    @property
    def limited(self) -> bool:
        return self.rpm is not None or self.tpm is not None or self.concurrency is not None

    def keys(self) -> list[str]:
        return [f"{self.base}:log", f"{self.base}:tokv", f"{self.base}:conc"]

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
