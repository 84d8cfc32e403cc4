"""Not collected by default (no test_ prefix): the gateway's CPU a chat call with tracing off, on, and sampled one
in ten, in one process, interleaved. Run: .venv/bin/pytest -s tests/e2e/probe_trace_cost.py"""

import asyncio
import os
import time

import httpx


def test_probe(provider, tenant_key, transactional_db, settings, monkeypatch):
    from gomodel.gateway import tracing
    from gomodel.gateway.app import gateway_app
    from tests.otlp_receiver import OTLPReceiver

    receiver = OTLPReceiver()
    receiver.receive = lambda path, body: None
    receiver.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    settings.UPSTREAM_CLIENT = "loop"
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
    headers = {"Authorization": f"Bearer {tenant_key[2]}"}

    async def calls(client, n):
        for _ in range(n):
            assert (await client.post("/v1/chat/completions", json=body, headers=headers)).status_code == 200

    async def main():
        transport = httpx.ASGITransport(app=gateway_app)
        results = {"off": [], "on": [], "one in ten": []}
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            await calls(client, 50)
            for _ in range(9):
                for mode in results:
                    settings.OTEL_TRACING = mode != "off"
                    if mode == "one in ten":
                        os.environ["OTEL_TRACES_SAMPLER"], os.environ["OTEL_TRACES_SAMPLER_ARG"] = "traceidratio", "0.1"
                    else:
                        os.environ.pop("OTEL_TRACES_SAMPLER", None)
                    await calls(client, 20)  # warm (the provider made)
                    start = time.process_time()
                    await calls(client, 800)
                    tracing.shutdown()  # the export thread's work counted
                    results[mode].append((time.process_time() - start) / 800 * 1e6)
        return results

    try:
        results = asyncio.run(main())
    finally:
        os.environ.pop("OTEL_TRACES_SAMPLER", None)
        receiver.stop()
    for mode, runs in results.items():
        print(f"\n{mode:>11}: median {sorted(runs)[4]:6.0f}, least {min(runs):6.0f} µs CPU a call "
              f"(process, upstream and client included); runs {[round(r) for r in runs]}")
