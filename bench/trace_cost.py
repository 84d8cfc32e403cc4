"""What tracing costs a call in CPU, in one process, without the rest of the gateway's noise:

    .venv/bin/python bench/trace_cost.py [--calls 20000]

Runs gomodel.gateway.tracing's whole life of a call (its span, one attempt span with its traceparent, the usage,
the end) with the real SDK, BatchSpanProcessor and OTLP/HTTP exporter posting to a local receiver that drops
the spans, and prints the process's CPU per call (export thread included): sampled every call, one in ten
(OTEL_TRACES_SAMPLER=traceidratio), and the bare loop without tracing for reference."""

import argparse
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gomodel.settings")


def fake_call():
    target = SimpleNamespace(name="openai", provider_type="openai")
    req = SimpleNamespace(method="POST", request_id="req_0123456789abcdef", started=time.perf_counter(),
                          header=lambda name: None)
    principal = SimpleNamespace(tenant_slug="acme")
    protocol = SimpleNamespace(endpoint="/v1/chat/completions", model="gpt-4o-mini", stream=False,
                               body={"model": "gpt-4o-mini", "max_tokens": 64, "temperature": 0.2},
                               prompt=lambda: [{"role": "user", "content": "Hi"}])
    record = SimpleNamespace(status=200, error_type=None, target=target, model="gpt-4o-mini", ttft_ms=1.5,
                             stream=False)
    event = SimpleNamespace(prompt_tokens=11, completion_tokens=6, cached_tokens=0, usage_source="reported",
                            cache=None)
    return target, req, principal, protocol, record, event


BODY = (b'{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"finish_reason":"stop",'
        b'"message":{"role":"assistant","content":"Hello from the mock!"}}],"usage":{"prompt_tokens":11}}')


def run(calls: int, traced: bool) -> float:
    from gomodel.gateway import tracing

    target, req, principal, protocol, record, event = fake_call()
    headers = {"authorization": "Bearer sk-x", "content-type": "application/json"}
    start = time.process_time()
    for n in range(calls):
        if not traced:
            continue
        if n % 500 == 0:
            tracing.flush()  # keeps the queue short of OTEL_BSP_MAX_QUEUE_SIZE: no span dropped
        trace = tracing.begin(req, principal, protocol)
        trace.attempt_start(target, "gpt-4o-mini", headers)
        trace.attempt_end(target, "gpt-4o-mini", 200, None)
        trace.answer(BODY)
        trace.settled(event)
        trace.end(record)
    if traced:
        tracing.shutdown()  # the export thread's work is part of the cost
    return (time.process_time() - start) / calls * 1e6


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=20000)
    args = p.parse_args()
    import django

    django.setup()
    from tests.otlp_receiver import OTLPReceiver

    receiver = OTLPReceiver()
    receiver.receive = lambda path, body: None  # taken and dropped: the gateway's side is measured
    receiver.start()
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.url
    try:
        print(f"no tracing:                {run(args.calls, False):7.1f} µs CPU a call")
        print(f"every call traced:         {run(args.calls, True):7.1f} µs CPU a call")
        os.environ["OTEL_TRACES_SAMPLER"], os.environ["OTEL_TRACES_SAMPLER_ARG"] = "traceidratio", "0.1"
        print(f"one call in ten (sampler): {run(args.calls, True):7.1f} µs CPU a call")
    finally:
        receiver.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
