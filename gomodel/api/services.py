"""What the management API reads beyond single rows: a tenant's usage (roll-ups plus not-yet-drained
events). Writes go through accounting.services."""

import logging
from datetime import date

import redis
from django.conf import settings

from accounting.models import Tenant
from accounting.reports import parse_range, pending_events, today_utc, usage_report

log = logging.getLogger(__name__)
USAGE_PAGE = 1000


# -- usage ----------------------------------------------------------------------------------------------

def undrained_entries() -> list:
    """The usage stream's entries not drained yet (at most USAGE_API_SCAN_LIMIT), as GET /v1/usage reads
    them; [] when Redis does not answer (the roll-ups still do)."""
    entries: list = []
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2.0, socket_connect_timeout=2.0)
    start = "-"
    try:
        while len(entries) < settings.USAGE_API_SCAN_LIMIT:
            page = client.xrange(settings.USAGE_STREAM, min=start, count=USAGE_PAGE)
            entries.extend(fields for _, fields in page)
            if len(page) < USAGE_PAGE:
                break
            start = "(" + page[-1][0].decode()
    except redis.RedisError as exc:
        log.warning("usage report could not read the usage stream (%s); answering from the database only", exc)
    finally:
        client.close()
    return entries


def tenant_usage(tenant: Tenant, start: date | None, end: date | None) -> dict:
    """The roll-ups GET /v1/usage gives the tenant, for any range: the same defaults (this month, or the
    month of the one bound given) but no cap on the span."""
    if start is None or end is None:
        start, end = parse_range(start and start.isoformat(), end and end.isoformat(), today_utc())
    entries = undrained_entries()
    return usage_report(tenant.id, tenant.slug, start, end, pending_events(entries, tenant.id, start, end))
