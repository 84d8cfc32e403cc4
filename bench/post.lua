-- wrk script for bench/run.py: POST /v1/chat/completions with a small chat body.
--   BENCH_KEY     the bearer key to send (optional: the mock ignores it)
--   BENCH_STREAM  "1" to ask for an SSE stream ("stream": true)
--   BENCH_MODEL   the model name (default gpt-4o-mini)
--   BENCH_USER    an end user to name (header x-gomodel-user; the +limits row's per-user limits)
--   BENCH_VARY    "1": every request a different prompt (the response cache's misses), kept 2 s (x-gomodel-cache-ttl)
-- At the end it prints one machine-readable line, "BENCH_JSON {...}", that run.py parses
-- (latencies in microseconds; wrk's --latency table is printed above it for humans).

local key = os.getenv("BENCH_KEY") or ""
local stream = os.getenv("BENCH_STREAM") == "1"
local model = os.getenv("BENCH_MODEL") or "gpt-4o-mini"
local vary = os.getenv("BENCH_VARY") == "1"

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end
local user = os.getenv("BENCH_USER") or ""
if user ~= "" then
  wrk.headers["x-gomodel-user"] = user
end
local function body(text)
  return '{"model":"' .. model .. '","messages":[{"role":"system","content":"You are terse."},'
    .. '{"role":"user","content":"' .. text .. '"}],"max_tokens":16' .. (stream and ',"stream":true' or '') .. '}'
end
wrk.body = body("Say hello to the benchmark.")

if vary then
  wrk.headers["x-gomodel-cache-ttl"] = "2"  -- a short life: the misses' entries do not pile up in Redis
  local counter = 0
  local tag = tostring(math.random(1, 1000000000)) .. "-" .. tostring(os.time())
  request = function()
    counter = counter + 1
    return wrk.format(nil, nil, nil, body("Say hello to the benchmark " .. tag .. "-" .. counter .. "."))
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,'
      .. '"max_us":%d,"mean_us":%.1f,"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,'
      .. '"err_timeout":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
