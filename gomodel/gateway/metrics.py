"""Prometheus metrics (`GET /metrics`).

Counted on the request path, once per request when its usage event is emitted (a few dict lookups
and float additions, no I/O): requests by provider/model/status, latency and time-to-first-token
histograms, upstream errors. The usage pipeline counts its own (events spooled and drained, in
accounting/usage/metrics.py). Read when scraped, from Redis and the spool file: usage stream length,
pending entries, spool size, drain lag and the last drain's time.

Several processes (`make run` starts one uvicorn worker per core plus the Celery worker): `serve`
points PROMETHEUS_MULTIPROC_DIR at `var/prometheus` (wiped at start), prometheus_client then keeps
each process's values in files there and `/metrics` adds them up. Without that variable (a single
`uvicorn` process, the tests) the values are this process's own.
"""

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from accounting.usage.events import StreamEvent

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

OTHER_MODEL = "other"

# Each metric's labelled children by label values: `.labels()` takes a lock and builds tuples on every
# call. The children are the ones `.labels()` keeps (multiprocess mode included); their number is
# bounded like the label values (unknown models are "other", names at most 256 characters).
_REQUESTS: dict = {}
_LATENCY: dict = {}
_TTFT: dict = {}
_UPSTREAM_ERRORS: dict = {}
_TOKENS: dict = {}


def _child(metric, children: dict, labels: tuple):
    child = children.get(labels)
    if child is None:
        child = children[labels] = metric.labels(*labels)
    return child


def observe_event(event: StreamEvent, known_model=None) -> None:
    """Count one request. `known_model(provider, model)` says whether the model may be a label: a
    tenant can send any `provider/<name>` upstream, and each new label value is a new time series."""
    provider, model = event.provider or "", event.model or ""
    if known_model is not None and not known_model(provider, model):
        model = OTHER_MODEL
    _child(REQUESTS, _REQUESTS, (provider, model, str(event.status))).inc()
    if event.latency_ms is not None:
        _child(LATENCY, _LATENCY, (provider, model)).observe(event.latency_ms / 1000)
    if event.ttft_ms is not None:
        _child(TTFT, _TTFT, (provider, model)).observe(event.ttft_ms / 1000)
    error = event.error_type
    if error and error != "client_disconnected":
        _child(UPSTREAM_ERRORS, _UPSTREAM_ERRORS, (provider, error)).inc()
    prompt, completion = event.prompt_tokens, event.completion_tokens
    if prompt:
        _child(TOKENS, _TOKENS, (provider, model, "prompt")).inc(prompt)
    if completion:
        _child(TOKENS, _TOKENS, (provider, model, "completion")).inc(completion)


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
