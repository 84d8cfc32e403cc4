"""What the management API reads beyond single rows: a tenant's usage (roll-ups plus not-yet-drained
events). Writes go through accounting.<domain>.services (the domain services, audited)."""

from datetime import date
from typing import cast

from django.conf import settings

from accounting.budgets import reports as budgets
from accounting.limits.ratelimits import current_usage, tenant_scope
from accounting.models import Tenant
from accounting.usage.breakdown import PLAIN, Breakdown
from accounting.usage.reports import parse_range, tenant_report, today_utc


def tenant_usage(tenant: Tenant, start: date | None, end: date | None, view: Breakdown = PLAIN) -> dict:
    """The roll-ups GET /v1/usage gives the tenant, for any range: the same defaults (this month, or the
    month of the one bound given) but no cap on the span."""
    if start is None or end is None:
        start, end = parse_range(cast(str | None, start and start.isoformat()),
                                 cast(str | None, end and end.isoformat()), today_utc())
    report = tenant_report(tenant.id, tenant.slug, start, end, view=view)
    report["budget"] = budgets.tenant_status(tenant)
    if view.group_by:  # each budgeted label value's or end user's row: its budget
        budgets.attribution_status(tenant, report["data"], view.group_by)
    scope = tenant_scope(settings.LIMITS_PREFIX, tenant.id, tenant.rpm_limit, tenant.tpm_limit,
                         tenant.concurrency_limit)
    # The tenant's own limits; a key's are its own business (null here, as for the master key's /v1/usage).
    report["rate_limits"] = {"key": None, "tenant": current_usage([scope])[0]}
    return report
