"""Prometheus metrics (`GET /metrics`).

Counted on the request path, once per request when its usage event is emitted (a dict lookup and a
few float additions, no I/O): requests by provider/model/status, latency and time-to-first-token
histograms, upstream errors, events spooled. Read when scraped, from Redis and the spool file:
usage stream length, pending entries, spool size, drain lag and the last drain's time.

Several processes (`make run` starts one uvicorn worker per core plus the Celery worker): `serve`
points PROMETHEUS_MULTIPROC_DIR at `var/prometheus` (wiped at start), prometheus_client then keeps
each process's values in files there and `/metrics` adds them up. Without that variable (a single
`uvicorn` process, the tests) the values are this process's own.
"""

import os
import time

import orjson
from django.conf import settings
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)

REQUESTS = Counter("gomodel_requests", "Requests that reached a provider, by outcome.",
                   ["provider", "model", "status"])
LATENCY = Histogram("gomodel_request_latency_seconds", "Whole request time, first byte in to last byte out.",
                    ["provider", "model"], buckets=LATENCY_BUCKETS)
TTFT = Histogram("gomodel_time_to_first_token_seconds", "Time until the first streamed chunk was sent.",
                 ["provider", "model"], buckets=TTFT_BUCKETS)
UPSTREAM_ERRORS = Counter("gomodel_upstream_errors", "Requests that ended in an upstream or gateway error.",
                          ["provider", "error_type"])
TOKENS = Counter("gomodel_tokens", "Tokens by provider, model and kind (prompt/completion).",
                 ["provider", "model", "kind"])
SPOOLED = Counter("gomodel_usage_events_spooled", "Usage events written to the local spool (Redis unavailable).")
DROPPED = Counter("gomodel_usage_events_dropped", "Usage events lost: Redis unavailable and the spool full "
                  "(USAGE_SPOOL_MAX_BYTES).")
DRAINED = Counter("gomodel_usage_events_drained", "Usage events stored by the drain (duplicates excluded).")
DRAIN_SECONDS = Histogram("gomodel_usage_drain_batch_seconds", "Time to store one batch of usage events.",
                          buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

LAST_DRAIN_KEY_SUFFIX = ":last-drain"


OTHER_MODEL = "other"


def observe_event(event: dict, known_model=None) -> None:
    """Count one request. `known_model(provider, model)` says whether the model may be a label: a
    tenant can send any `provider/<name>` upstream, and each new label value is a new time series."""
    provider = event.get("provider") or ""
    model = event.get("model") or ""
    if known_model is not None and not known_model(provider, model):
        model = OTHER_MODEL
    status = event.get("status") or 0
    REQUESTS.labels(provider, model, str(status)).inc()
    latency = event.get("latency_ms")
    if latency is not None:
        LATENCY.labels(provider, model).observe(latency / 1000)
    ttft = event.get("ttft_ms")
    if ttft is not None:
        TTFT.labels(provider, model).observe(ttft / 1000)
    error = event.get("error_type")
    if error and error != "client_disconnected":
        UPSTREAM_ERRORS.labels(provider, error).inc()
    prompt, completion = event.get("prompt_tokens") or 0, event.get("completion_tokens") or 0
    if prompt:
        TOKENS.labels(provider, model, "prompt").inc(prompt)
    if completion:
        TOKENS.labels(provider, model, "completion").inc(completion)


def stream_id_ms(entry_id) -> int:
    if isinstance(entry_id, bytes):
        entry_id = entry_id.decode()
    return int(str(entry_id).split("-", 1)[0])


async def stream_state(redis) -> dict:
    """Length, pending entries, oldest entry's age and the last drain's time of the usage stream."""
    stream = settings.USAGE_STREAM
    pipe = redis.pipeline(transaction=False)
    pipe.xlen(stream)
    pipe.xrange(stream, count=1)
    pipe.get(stream + LAST_DRAIN_KEY_SUFFIX)
    length, first, last = await pipe.execute()
    try:
        pending = (await redis.xpending(stream, settings.USAGE_CONSUMER_GROUP))["pending"]
    except Exception:  # no group yet: nothing drained, nothing pending
        pending = 0
    lag = max(0.0, time.time() - stream_id_ms(first[0][0]) / 1000) if first else 0.0
    return {"length": int(length), "pending": int(pending), "lag_seconds": lag,
            "last_drain": orjson.loads(last) if last else None}


def spool_events() -> int:
    from . import usage

    return usage.spool_size()


class _Snapshot:
    """A collector that reports values read just before the scrape."""

    def __init__(self, state: dict | None, spool: int, spool_bytes: int = 0):
        self.state, self.spool, self.spool_bytes = state, spool, spool_bytes

    def collect(self):
        yield GaugeMetricFamily("gomodel_usage_spool_events", "Usage events waiting in the local spool.",
                                value=self.spool)
        yield GaugeMetricFamily("gomodel_usage_spool_bytes", "Size of the local spool (its cap is "
                                "USAGE_SPOOL_MAX_BYTES).", value=self.spool_bytes)
        if self.state is None:
            yield GaugeMetricFamily("gomodel_usage_redis_up", "Whether the usage stream's Redis answered.", value=0)
            return
        yield GaugeMetricFamily("gomodel_usage_redis_up", "Whether the usage stream's Redis answered.", value=1)
        yield GaugeMetricFamily("gomodel_usage_stream_length", "Usage events in the stream (not yet drained).",
                                value=self.state["length"])
        yield GaugeMetricFamily("gomodel_usage_stream_pending",
                                "Entries delivered to a drain but not acknowledged yet.", value=self.state["pending"])
        yield GaugeMetricFamily("gomodel_usage_drain_lag_seconds",
                                "Age of the oldest event not yet drained (0 when the stream is empty).",
                                value=self.state["lag_seconds"])
        last = self.state["last_drain"]
        if last:
            yield GaugeMetricFamily("gomodel_usage_last_drain_timestamp_seconds", "When the last drain finished.",
                                    value=last.get("at", 0))


def render(state: dict | None, spool: int, spool_bytes: int = 0) -> tuple[bytes, str]:
    """The exposition text: this process's (or every process's) metrics plus the snapshot gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        from prometheus_client import REGISTRY

        body = generate_latest(REGISTRY)
    snapshot = CollectorRegistry()
    snapshot.register(_Snapshot(state, spool, spool_bytes))
    return body + generate_latest(snapshot), CONTENT_TYPE_LATEST
