"""What a finished call leaves for operators: Prometheus metrics (`GET /metrics`) and its access log line.

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

import asyncio
import os
import queue
import sys
import threading
import time

import orjson
from django.conf import settings
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


# -- the access log ---------------------------------------------------------------------------------------
# One line per /v1 call (ACCESS_LOG=0 turns it off): who called, what, where it went, how it ended, what it
# cost — never a credential or a body. A served call's line is made from its usage event, so it says exactly
# what was billed; a refused one's from its error. With LOG_FORMAT=json a line is one JSON object
# (`"logger": "gomodel.access"` and these fields); in text, the log's usual prefix and `key=value` pairs.
# Cheap on the hot path: encoded once and appended to a buffer; a flush per FLUSH_SECONDS (or FLUSH_LINES)
# writes the batch to stderr in one write, off the event loop. (Through the `logging` module with a queue
# and a writer thread it cost ~50 µs a request: 20 % of the gateway's CPU.)

FLUSH_SECONDS = 0.05
FLUSH_LINES = 512


# x-gomodel-cache's value → the access line's `cache` (None: the call has no cache policy)
CACHE_RESULTS = {b"hit-exact": "exact", b"hit-semantic": "semantic", b"miss": "miss", b"bypass": "bypass"}


def access_fields(event, cache: bytes | None = None) -> dict:
    """The fields of a served call's line: the billed figures and the attribution (labels, end user), never a
    credential (only the key's prefix) nor a body."""
    return {
        "request_id": event.request_id, "tenant": event.tenant, "key_prefix": event.api_key_prefix,
        "endpoint": event.endpoint, "model": event.model, "requested_model": event.requested_model,
        "provider": event.provider, "status": event.status, "error_type": event.error_type, "stream": event.stream,
        "prompt_tokens": event.prompt_tokens, "completion_tokens": event.completion_tokens,
        "usage_source": event.usage_source, "cost_usd": event.cost, "latency_ms": event.latency_ms,
        "ttft_ms": event.ttft_ms, "cache": CACHE_RESULTS.get(cache, event.cache) if cache else event.cache,
        "labels": event.labels or None, "user": event.user or None,
    }


class AccessLog:
    """The process's buffered access lines; `sink(batch: bytes)` writes them (stderr; tests replace it)."""

    def __init__(self, sink=None):
        self.sink = sink or _write_stderr
        self.lines: list[bytes] = []
        self.flushing: asyncio.TimerHandle | None = None

    def add(self, line: dict) -> None:
        if settings.LOG_FORMAT == "json":
            encoded = orjson.dumps({"ts": _now(), "level": "INFO", "logger": "gomodel.access", **line})
        else:
            text = " ".join([f"{name}={_text(value)}" for name, value in line.items() if value is not None])
            encoded = f"{_now()} INFO gomodel.access {text}".encode()
        self.lines.append(encoded)
        if len(self.lines) >= FLUSH_LINES:
            self.flush()
        elif self.flushing is None:
            try:
                self.flushing = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)
            except RuntimeError:  # no loop (a management command): write now
                self.flush()

    def flush(self) -> None:
        if self.flushing is not None:
            self.flushing.cancel()
            self.flushing = None
        if not self.lines:
            return
        batch = b"\n".join(self.lines) + b"\n"
        self.lines = []
        _writer().put((self.sink, batch))  # its own thread writes it: no executor hop on the loop


    def close(self) -> None:
        """Shutdown: what is buffered, written now."""
        if self.flushing is not None:
            self.flushing.cancel()
            self.flushing = None
        if self.lines:
            batch, self.lines = b"\n".join(self.lines) + b"\n", []
            self.sink(batch)


_second = [-1, ""]  # the formatted second, made once a second (strftime costs ~3 µs a line)


def _now() -> str:
    now = time.time()
    second = int(now)
    if second != _second[0]:
        _second[0], _second[1] = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{_second[1]}.{int(now * 1000) % 1000:03d}Z"


_queue: list = []


def _writer() -> "queue.SimpleQueue":
    """The access log's writer thread (one per process, started on first use)."""
    if not _queue:
        batches: queue.SimpleQueue = queue.SimpleQueue()

        def write_forever():
            while True:
                sink, batch = batches.get()
                try:
                    sink(batch)
                except Exception:  # a sink must never stop the writer
                    pass

        threading.Thread(target=write_forever, name="gomodel-access-log", daemon=True).start()
        _queue.append(batches)
    return _queue[0]


def _write_stderr(batch: bytes) -> None:
    try:
        os.write(sys.stderr.fileno(), batch)
    except (OSError, ValueError):
        pass  # stderr closed: nothing to do about it here


ACCESS = AccessLog()


def _text(value) -> object:
    """A text line's value: labels as `name:value,…` (as x-gomodel-labels takes them)."""
    return ",".join(f"{name}:{text}" for name, text in value.items()) if isinstance(value, dict) else value


def access_line(event, cache: bytes | None = None) -> None:
    """`cache`: the call's x-gomodel-cache value (hit-exact, hit-semantic, miss, bypass), when it has a policy."""
    if settings.ACCESS_LOG:
        ACCESS.add(access_fields(event, cache))


def refused_line(req, principal, error, attribution=None) -> None:
    """A call answered before any upstream attempt (401, 400, 403, 404, 429 …): no usage event, one line;
    its labels and end user once the pipeline has read them (a budget or label limit refused it)."""
    if not settings.ACCESS_LOG:
        return
    ACCESS.add({"request_id": req.request_id, "tenant": getattr(principal, "tenant_slug", None),
                "key_prefix": getattr(principal, "key_prefix", None), "endpoint": req.path[:200],
                "status": error.status, "error_type": error.type, "error_code": error.code,
                "latency_ms": round((time.perf_counter() - req.started) * 1000, 3),
                "labels": getattr(attribution, "labels", None) or None,
                "user": getattr(attribution, "user", None) or None})
