"""CPU cost per call of the hot path's two network clients, measured in isolation (one process, uvloop,
-c concurrent tasks (64), CPU time of this process and its threads), to back up bench/hotpath_profile.py:

  upstream POST /v1/chat/completions to the bench mock through each client of bench/transports.py, by the
  gateway's UpstreamClient interface: `httptools` (the gateway's own, gomodel/gateway/upstream_client/),
  `reqwest` (pyreqwest), `aiohttp`, `httpx-aiohttp`, `httpx`; and aiohttp.ClientSession with nothing on top
  usage event XADD to Redis (db 14, a throw-away stream) with redis-py asyncio
    - one XADD per event, awaited (what the gateway did before accounting.usage.writer.UsageWriter)
    - events batched: 1 pipeline of 32 XADDs

    .venv/bin/python bench/micro.py [-n 20000] [-c 64]
"""

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import run as bench  # noqa: E402

BODY = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}],
                     "max_tokens": 16})
STREAM_BODY = orjson.dumps({**orjson.loads(BODY), "stream": True})
HEADERS = {"content-type": "application/json", "accept": "application/json", "authorization": "Bearer sk-bench"}
EVENT = orjson.dumps({"request_id": "req_" + "0" * 32, "ts": time.time(), "tenant_id": 1, "tenant": "bench",
                      "api_key_id": 1, "api_key_prefix": "sk_gom_…abcd", "provider_id": 1, "provider": "openai",
                      "provider_type": "openai", "requested_model": "gpt-4o-mini", "model": "gpt-4o-mini",
                      "endpoint": "/v1/chat/completions", "status": 200, "error_type": None, "stream": False,
                      "latency_ms": 1.234, "ttft_ms": None, "prompt_tokens": 12, "completion_tokens": 8,
                      "total_tokens": 20, "cached_tokens": 0, "reasoning_tokens": 0, "usage_source": "reported"})
CONCURRENCY = 10


async def measure(name: str, call, n: int) -> float:
    for _ in range(200):  # warm: connections open, caches filled
        await call()
    per_task = n // CONCURRENCY

    async def worker():
        for _ in range(per_task):
            await call()

    cpu0, wall0 = time.process_time(), time.perf_counter()  # all threads: pyreqwest's Tokio thread too
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    done = per_task * CONCURRENCY
    us = cpu / done * 1e6
    print(f"| {name} | {us:6.1f} | {done / wall:8,.0f} |", flush=True)
    return us


async def main_async(n: int, mock_url: str, redis_url: str, clients: list[str] | None = None):
    import aiohttp
    import django
    import redis.asyncio as aioredis

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gomodel.settings")
    django.setup()
    from transports import OWN, TRANSPORTS, new_client

    print(f"| operation ({CONCURRENCY} concurrent tasks, uvloop) | CPU µs / call | calls/s |")
    print("|---|---:|---:|")
    url = mock_url + "/chat/completions"
    for kind in clients or TRANSPORTS:
        client = new_client(kind)

        async def call(client=client):
            response = await client.request("POST", url, headers=HEADERS, content=BODY)
            assert response.status_code == 200 and response.content

        await measure(f"upstream POST: {kind}" + (" (the gateway's own)" if kind == OWN else ""), call, n)

        async def stream(client=client):
            request = client.build_request("POST", url, headers=HEADERS, content=STREAM_BODY)
            response = await client.send(request, stream=True)
            received = 0
            async for data in response.aiter_bytes():
                received += len(data)
            await response.aclose()
            assert response.status_code == 200 and received

        await measure(f"upstream POST, streamed: {kind}", stream, n)
        await client.aclose()

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000), trust_env=False)

    async def via_aiohttp():
        async with session.post(url, data=BODY, headers=HEADERS) as r:
            await r.read()
    if clients is None:
        await measure("upstream POST: aiohttp.ClientSession directly", via_aiohttp, n)
    await session.close()
    if clients is not None:
        return

    r = aioredis.from_url(redis_url, socket_timeout=2.0, socket_connect_timeout=2.0, health_check_interval=30)
    stream = "gomodel:bench:micro"

    async def xadd():
        await r.xadd(stream, {"e": EVENT})
    await measure("usage event: one awaited XADD per event (redis-py asyncio)", xadd, n)

    async def xadd_batch():
        pipe = r.pipeline(transaction=False)
        for _ in range(32):
            pipe.xadd(stream, {"e": EVENT})
        await pipe.execute()
    us = await measure("  (batch) 32 XADDs in one pipeline", xadd_batch, max(n // 32, 400))
    print(f"| usage event: batched, per event | {us / 32:6.0f} | |")
    await r.delete(stream)
    await r.aclose()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=20000, help="calls per measurement")
    p.add_argument("-c", type=int, default=64, help="concurrent tasks")
    p.add_argument("--clients", help="comma-separated clients of bench/transports.py to measure (and nothing "
                   "else), e.g. httptools,aiohttp; default: all, and the Redis rows")
    args = p.parse_args(argv)
    global CONCURRENCY
    CONCURRENCY = args.c
    procs = bench.Processes()
    port = bench.free_port()
    try:
        mock = procs.start("mock", [sys.executable, str(bench.BENCH_DIR / "mock_upstream.py"), "--port", str(port)],
                           os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        bench.wait_until(lambda: bench.http_get(f"http://127.0.0.1:{port}/v1/models")[0] == 200, 15, "mock", mock)
        redis_url = bench.bench_redis_url(int(os.environ.get("BENCH_REDIS_DB", "14")))
        if not bench.redis_answers(redis_url):
            print(f"no Redis at {redis_url}", file=sys.stderr)
            return 1
        clients = args.clients.split(",") if args.clients else None
        uvloop.run(main_async(args.n, f"http://127.0.0.1:{port}/v1", redis_url, clients))
        return 0
    finally:
        procs.stop_all()


if __name__ == "__main__":
    sys.exit(main())
