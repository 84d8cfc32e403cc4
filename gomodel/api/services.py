"""What the management API reads beyond single rows: a tenant's usage (roll-ups plus not-yet-drained
events). Writes go through accounting.services (the domain services, audited)."""

from datetime import date

from accounting.models import Tenant
from accounting.reports import parse_range, tenant_report, today_utc


def tenant_usage(tenant: Tenant, start: date | None, end: date | None) -> dict:
    """The roll-ups GET /v1/usage gives the tenant, for any range: the same defaults (this month, or the
    month of the one bound given) but no cap on the span."""
    if start is None or end is None:
        start, end = parse_range(start and start.isoformat(), end and end.isoformat(), today_utc())
    return tenant_report(tenant.id, tenant.slug, start, end)
