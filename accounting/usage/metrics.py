"""The usage pipeline's own Prometheus metrics: events spooled and drained, drain batch time, and the
state of the usage stream that `/metrics` reads when scraped (the spool's size: spool.py; see
gomodel/gateway/metrics.py for the request metrics and the exposition)."""

import time

import orjson
from django.conf import settings
from prometheus_client import Counter, Histogram

SPOOLED = Counter("gomodel_usage_events_spooled", "Usage events written to the local spool (Redis unavailable).")
DROPPED = Counter("gomodel_usage_events_dropped", "Usage events lost: Redis unavailable and the spool full "
                  "(USAGE_SPOOL_MAX_BYTES).")
DRAINED = Counter("gomodel_usage_events_drained", "Usage events stored by the drain (duplicates excluded).")
DRAIN_SECONDS = Histogram("gomodel_usage_drain_batch_seconds", "Time to store one batch of usage events.",
                          buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

LAST_DRAIN_KEY_SUFFIX = ":last-drain"


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
