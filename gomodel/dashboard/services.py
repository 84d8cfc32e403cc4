"""The numbers behind the dashboard and the monthly statements. Read-only, never on the /v1 path.

Where each number comes from:

- per day, totals and the breakdowns (tenant, provider, model, top keys): the `UsageDaily` roll-ups;
- per hour: the raw `UsageEvent` rows (kept USAGE_RETENTION_DAYS), grouped by the database;
- p50/p95 latency and time to first token: computed here, in Python (SQLite has no percentile
  function), over at most DASHBOARD_SCAN_LIMIT of the newest events of the range — the answer says
  how many it used and whether it had to stop short;
- statements: `accounting.usage.reports.usage_report` (the same roll-up the tenant sees at /v1/usage), plus
  the events still waiting in the usage stream, grouped into one line per provider × model × key.

What is not drained yet (seconds, normally) is missing from the charts; the live feed shows it.
"""

import calendar
import csv
import io
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncHour

from accounting.models import Tenant, UsageDaily, UsageEvent
from accounting.prices import money
from accounting.prices.book import to_e10
from accounting.usage.breakdown import Breakdown
from accounting.usage.reports import FIELDS, MAX_DAYS, ReportError, parse_day, tenant_report, today_utc

DEFAULT_DAYS = 14  # the range shown when none is asked for: the last two weeks
HOUR_MAX_DAYS = 31  # hourly buckets only for ranges up to this long (744 buckets)
AUTO_HOUR_DAYS = 3  # "auto" picks hourly buckets for ranges up to this long
TOP = 10
SPLIT_TOP = 5  # the series split by tenant, provider or model: the top 5 of the range, the rest as "other"
SPLIT_BY = {"tenant": "tenant_slug", "provider": "provider", "model": "model"}
TOKEN_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "reasoning_tokens")
MONTH = re.compile(r"(\d{4})-(\d{2})")
SLUG = re.compile(r"[-a-zA-Z0-9_]{1,64}")


@dataclass(frozen=True)
class Filters:
    tenant: Tenant | None
    start: date
    end: date
    granularity: str  # "day" or "hour"

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def as_dict(self) -> dict:
        return {"tenant": self.tenant.slug if self.tenant else None, "start": self.start.isoformat(),
                "end": self.end.isoformat(), "granularity": self.granularity}


def parse_filters(query, today: date | None = None) -> Filters:
    """`?tenant=<slug>&start=YYYY-MM-DD&end=YYYY-MM-DD&granularity=auto|day|hour` (UTC days, inclusive)."""
    today = today or today_utc()
    start, end = _day(query.get("start"), "start"), _day(query.get("end"), "end")
    if end is None:
        end = today if start is None else max(start, min(today, start + timedelta(days=DEFAULT_DAYS - 1)))
    if start is None:
        start = end - timedelta(days=DEFAULT_DAYS - 1)
    if end < start:
        raise ReportError("'end' must not be before 'start'.", "end")
    if (end - start).days >= MAX_DAYS:
        raise ReportError(f"The range may span at most {MAX_DAYS} days.", "end")
    granularity = query.get("granularity") or "auto"
    if granularity not in ("auto", "day", "hour"):
        raise ReportError("'granularity' must be auto, day or hour.", "granularity")
    days = (end - start).days + 1
    if granularity == "auto":
        granularity = "hour" if days <= AUTO_HOUR_DAYS else "day"
    elif granularity == "hour" and days > HOUR_MAX_DAYS:
        raise ReportError(f"Hourly buckets cover at most {HOUR_MAX_DAYS} days; pick a shorter range or 'day'.",
                          "granularity")
    return Filters(tenant=_tenant(query.get("tenant")), start=start, end=end, granularity=granularity)


def _day(value, param: str) -> date | None:
    return parse_day(value, param) if value else None


def _tenant(slug) -> Tenant | None:
    if not slug:
        return None
    tenant = Tenant.objects.filter(slug=slug).first() if SLUG.fullmatch(slug) else None
    if tenant is None:
        raise ReportError(f"No tenant '{str(slug)[:64]}'.", "tenant")
    return tenant


def _bounds(filters: Filters) -> tuple[datetime, datetime]:
    start = datetime.combine(filters.start, time.min, dt_timezone.utc)
    return start, datetime.combine(filters.end + timedelta(days=1), time.min, dt_timezone.utc)


def _daily(filters: Filters):
    rows = UsageDaily.objects.filter(day__gte=filters.start, day__lte=filters.end)
    return rows.filter(tenant=filters.tenant) if filters.tenant else rows


def _events(filters: Filters):
    since, until = _bounds(filters)
    rows = UsageEvent.objects.filter(created_at__gte=since, created_at__lt=until)
    return rows.filter(tenant=filters.tenant) if filters.tenant else rows


def usd(cost_e10: int | None) -> float:
    return float(Decimal(cost_e10 or 0).scaleb(UsageDaily.COST_EXPONENT))


usd_string = money.cost_string  # exact USD as a string; None when no request in it had a price


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default, PostgreSQL's percentile_cont)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (position - low), 3)


def _sums():
    return {"requests": Sum("requests"), "errors": Sum("errors"), "unpriced": Sum("unpriced_requests"),
            "cost_e10": Sum("cost_e10"), "cache_hits": Sum("cache_hits"), "saved_e10": Sum("cost_saved_e10"),
            **{field: Sum(field) for field in TOKEN_FIELDS}}


def _cache(row: dict, requests: int) -> dict:
    """Response cache hits, their rate and what they saved (USD, exact), of a roll-up sum."""
    hits = row["cache_hits"] or 0
    return {"cache_hits": hits, "hit_rate": round(hits / requests, 4) if requests else None,
            "cost_saved_usd": usd_string(row["saved_e10"] or 0, 1)}


def _buckets(filters: Filters) -> list[datetime | date]:
    if filters.granularity == "day":
        return [filters.start + timedelta(days=i) for i in range(filters.days)]
    start, _ = _bounds(filters)
    return [start + timedelta(hours=i) for i in range(filters.days * 24)]


def _label(bucket) -> str:
    return bucket.strftime("%Y-%m-%d %H:00") if isinstance(bucket, datetime) else bucket.isoformat()


def overview(filters: Filters) -> dict:
    """Everything the dashboard page draws, for one tenant (or all) and one range."""
    buckets = _buckets(filters)
    index = {bucket: i for i, bucket in enumerate(buckets)}
    n = len(buckets)
    series: dict[str, list[Any]] = {name: [0] * n for name in ("requests", "errors", *TOKEN_FIELDS)}
    series["cost_usd"] = [0.0] * n
    if filters.granularity == "day":
        for row in _daily(filters).values("day").annotate(**_sums()).order_by("day"):
            i = index.get(row["day"])
            if i is None:
                continue
            for name in ("requests", "errors", *TOKEN_FIELDS):
                series[name][i] = row[name] or 0
            series["cost_usd"][i] = usd(row["cost_e10"])
    else:
        rows = (_events(filters).annotate(bucket=TruncHour("created_at", tzinfo=dt_timezone.utc)).values("bucket")
                .annotate(requests=Count("id"), errors=Count("id", filter=~Q(status=200)), cost=Sum("cost"),
                          **{field: Sum(field) for field in TOKEN_FIELDS}).order_by("bucket"))
        for row in rows:
            i = index.get(row["bucket"].astimezone(dt_timezone.utc))
            if i is None:
                continue
            for name in ("requests", "errors", *TOKEN_FIELDS):
                series[name][i] = row[name] or 0
            series["cost_usd"][i] = float(row["cost"] or 0)
    series["cost_usd"] = [round(value, 6) for value in series["cost_usd"]]
    series["error_rate"] = [round(e / r, 4) if r else None for e, r in zip(series["errors"], series["requests"])]
    latency = _latency(filters, buckets, index)
    series.update(latency.pop("series"))

    daily = _daily(filters)
    total = daily.aggregate(**_sums())
    requests = total["requests"] or 0
    totals = {"requests": requests, "errors": total["errors"] or 0,
              "error_rate": round((total["errors"] or 0) / requests, 4) if requests else None,
              **{field: total[field] or 0 for field in TOKEN_FIELDS},
              "cost_usd": usd_string(total["cost_e10"] or 0, requests - (total["unpriced"] or 0)),
              **_cache(total, requests)}
    return {
        "filters": filters.as_dict(),
        "labels": [_label(bucket) for bucket in buckets],
        "series": series,
        "totals": totals,
        "latency": latency,
        "split": {name: _split(filters, index, field) for name, field in SPLIT_BY.items()},
        "by_tenant": _breakdown(daily, "tenant_slug"),
        "by_provider": _breakdown(daily, "provider"),
        "by_model": _breakdown(daily, "model"),
        "top_keys": _top_keys(daily),
        **_top_attribution(filters),
    }


def _split(filters: Filters, index: dict, field: str) -> list[dict]:
    """Requests, tokens and spend over time for each of the top groups (tenant, provider or model)."""
    if filters.granularity == "day":
        rows = [(row["day"], row[field], row["requests"] or 0, row["total_tokens"] or 0, usd(row["cost_e10"]))
                for row in _daily(filters).values("day", field).annotate(
                    requests=Sum("requests"), total_tokens=Sum("total_tokens"), cost_e10=Sum("cost_e10"))]
    else:
        rows = [(row["bucket"].astimezone(dt_timezone.utc), row[field], row["requests"], row["total_tokens"] or 0,
                 float(row["cost"] or 0))
                for row in _events(filters).annotate(bucket=TruncHour("created_at", tzinfo=dt_timezone.utc))
                .values("bucket", field).annotate(requests=Count("id"), total_tokens=Sum("total_tokens"),
                                                  cost=Sum("cost")).order_by()]
    volume: dict[str, int] = {}
    for _, name, requests, _, _ in rows:
        volume[name or "—"] = volume.get(name or "—", 0) + requests
    top = sorted(volume, key=lambda name: (-volume[name], name))[:SPLIT_TOP]
    groups: dict[str, dict[str, Any]] = {
        name: {"name": name, "requests": [0] * len(index), "total_tokens": [0] * len(index),
               "cost_usd": [0.0] * len(index)} for name in top}
    if len(volume) > SPLIT_TOP:
        groups["\0other"] = {"name": "other", "requests": [0] * len(index), "total_tokens": [0] * len(index),
                             "cost_usd": [0.0] * len(index)}
    for bucket, name, requests, tokens, cost in rows:
        i = index.get(bucket)
        group = groups.get(name or "—") or groups.get("\0other")
        if i is None or group is None:
            continue
        group["requests"][i] += requests
        group["total_tokens"][i] += tokens
        group["cost_usd"][i] += cost
    for group in groups.values():
        group["cost_usd"] = [round(value, 6) for value in group["cost_usd"]]
    return list(groups.values())


def _row(row: dict) -> dict:
    requests = row["requests"] or 0
    return {"requests": requests, "errors": row["errors"] or 0,
            "error_rate": round((row["errors"] or 0) / requests, 4) if requests else None,
            "prompt_tokens": row["prompt_tokens"] or 0, "completion_tokens": row["completion_tokens"] or 0,
            "total_tokens": row["total_tokens"] or 0,
            "cost_usd": usd_string(row["cost_e10"] or 0, requests - (row["unpriced"] or 0)), **_cache(row, requests)}


def _breakdown(daily, field: str) -> list[dict]:
    rows = daily.values(field).annotate(**_sums()).order_by("-requests", field)[:TOP]
    return [{"name": row[field] or "—", **_row(row)} for row in rows]


def _top_keys(daily) -> list[dict]:
    rows = (daily.values("api_key_id", "api_key_prefix", "tenant_slug").annotate(**_sums())
            .order_by("-requests", "api_key_prefix")[:TOP])
    return [{"api_key": row["api_key_prefix"] or "—", "api_key_id": row["api_key_id"], "tenant": row["tenant_slug"],
             **_row(row)} for row in rows]


def _top_attribution(filters: Filters) -> dict:
    """The top labels (name:value) and end users by spend, then requests. The roll-ups know neither, so this
    sums the range's latest DASHBOARD_SCAN_LIMIT events (`attribution_truncated` when there were more; the
    statements and /v1/usage?group_by= sum them all)."""
    limit = settings.DASHBOARD_SCAN_LIMIT
    rows = list(_events(filters).order_by("-created_at").values_list(
        "labels", "user", "status", "total_tokens", "cost", "cache", "cost_saved_usd")[:limit])
    groups: dict[str, dict[str, dict[str, Any]]] = {"labels": {}, "users": {}}
    for labels, user, status, tokens, cost, cache, saved in rows:
        names = [("labels", f"{name}:{value}") for name, value in (labels or {}).items()]
        for group, name in names + ([("users", user)] if user else []):
            row = groups[group].get(name)
            if row is None:
                row = groups[group][name] = {"name": name, "requests": 0, "errors": 0, "total_tokens": 0,
                                             "prompt_tokens": 0, "completion_tokens": 0, "cost_e10": 0,
                                             "unpriced": 0, "cache_hits": 0, "saved_e10": 0}
            row["requests"] += 1
            row["errors"] += status != 200
            row["total_tokens"] += tokens
            row["cost_e10"] += to_e10(cost)
            row["unpriced"] += cost is None
            row["cache_hits"] += bool(cache)
            row["saved_e10"] += to_e10(saved)

    def top(group: str) -> list[dict]:
        ranked = sorted(groups[group].values(), key=lambda r: (-r["cost_e10"], -r["requests"], r["name"]))[:TOP]
        return [{"name": row["name"], **_row(row)} for row in ranked]

    return {"top_labels": top("labels"), "top_users": top("users"), "attribution_truncated": len(rows) >= limit}


def _latency(filters: Filters, buckets: list, index: dict) -> dict:
    limit = settings.DASHBOARD_SCAN_LIMIT
    rows = list(_events(filters).order_by("-created_at").values_list("created_at", "latency_ms", "ttft_ms")[:limit])
    latencies, ttfts = [], []
    per_bucket: list[list[float]] = [[] for _ in buckets]
    per_bucket_ttft: list[list[float]] = [[] for _ in buckets]
    hourly = filters.granularity == "hour"
    for created_at, latency_ms, ttft_ms in rows:
        created_at = created_at.astimezone(dt_timezone.utc)
        key = created_at.replace(minute=0, second=0, microsecond=0) if hourly else created_at.date()
        i = index.get(key)
        if latency_ms is not None:
            latencies.append(latency_ms)
            if i is not None:
                per_bucket[i].append(latency_ms)
        if ttft_ms is not None:
            ttfts.append(ttft_ms)
            if i is not None:
                per_bucket_ttft[i].append(ttft_ms)
    return {
        "p50_ms": percentile(latencies, 0.5), "p95_ms": percentile(latencies, 0.95),
        "ttft_p50_ms": percentile(ttfts, 0.5), "ttft_p95_ms": percentile(ttfts, 0.95),
        "sample": len(rows), "truncated": len(rows) >= limit,
        "series": {
            "latency_p50_ms": [percentile(values, 0.5) for values in per_bucket],
            "latency_p95_ms": [percentile(values, 0.95) for values in per_bucket],
            "ttft_p50_ms": [percentile(values, 0.5) for values in per_bucket_ttft],
            "ttft_p95_ms": [percentile(values, 0.95) for values in per_bucket_ttft],
        },
    }


# -- monthly statements ------------------------------------------------------------------------------

def parse_month(value: str | None, today: date | None = None) -> tuple[date, date]:
    """'YYYY-MM' (default: this month) → its first and last day."""
    today = today or today_utc()
    if not value:
        year, month = today.year, today.month
    else:
        match = MONTH.fullmatch(value)
        if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 2000:
            raise ReportError(f"'month' must be YYYY-MM, not '{str(value)[:40]}'.", "month")
        year, month = int(match.group(1)), int(match.group(2))
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def monthly_statement(tenant: Tenant, first: date, last: date, entries: list | None = None) -> dict:
    """A tenant's usage for one month: one line per provider × model × key, and the totals.

    Built on `usage_report` (so it equals what the tenant reads at /v1/usage), events still in the
    stream included. Line costs add up exactly to the total (both are sums of the same 1e-10 USD units).
    """
    report = tenant_report(tenant.id, tenant.slug, first, last, entries)
    lines: dict[tuple, dict] = {}
    for row in report["data"]:
        key = (row["provider"], row["model"], row["api_key"] or "")
        line = lines.get(key)
        if line is None:
            line = lines[key] = {"provider": row["provider"], "model": row["model"], "api_key": row["api_key"] or "",
                                 **{field: 0 for field in FIELDS}, "cache_hits": 0, "cost_saved_usd": Decimal(0),
                                 "_cost": Decimal(0), "_priced": False}
        for field in FIELDS:
            line[field] += row[field]
        line["cache_hits"] += row["cache_hits"]
        line["cost_saved_usd"] += Decimal(row["cost_saved_usd"])
        if row["cost_usd"] is not None:
            line["_cost"] += Decimal(row["cost_usd"])
            line["_priced"] = True
    out = []
    for line in sorted(lines.values(), key=lambda item: (item["provider"], item["model"], item["api_key"])):
        cost, priced = line.pop("_cost"), line.pop("_priced")
        line["cost_usd"] = money.usd(cost) if priced else None
        line["cost_saved_usd"] = money.usd(line["cost_saved_usd"])
        out.append(line)
    return {"tenant": tenant.slug, "tenant_name": tenant.name, "month": first.strftime("%Y-%m"),
            "start": first.isoformat(), "end": last.isoformat(), "lines": out, "totals": report["totals"],
            "days": report["data"], "group_by": ""}


def attribution_statement(tenant: Tenant, first: date, last: date, group_by: str, entries: list | None = None,
                          ) -> dict:
    """The month per label or per end user (`group_by`), as `/v1/usage?group_by=` answers it (from the stored
    events: accounting/usage/breakdown.py); the unlabelled requests (no user) are the line named ""."""
    report = tenant_report(tenant.id, tenant.slug, first, last, entries, view=Breakdown(group_by))
    lines = [{**row, group_by: row[group_by] or ""} for row in report["data"]]
    return {"tenant": tenant.slug, "tenant_name": tenant.name, "month": first.strftime("%Y-%m"),
            "start": first.isoformat(), "end": last.isoformat(), "lines": lines, "totals": report["totals"],
            "group_by": group_by}


GROUP_COLUMNS = {"": ["provider", "model", "api_key"], "label": ["label"], "user": ["user"]}
COUNT_COLUMNS = ["requests", "prompt_tokens", "cached_tokens", "completion_tokens", "reasoning_tokens",
                 "total_tokens"]
CSV_COLUMNS = ["tenant", "period_start", "period_end", *GROUP_COLUMNS[""], *COUNT_COLUMNS, "cost_usd", "cache_hits",
               "cost_saved_usd"]


def _cell(value) -> str:
    """Text a spreadsheet would run as a formula is quoted (CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def statement_csv(statement: dict) -> str:
    """One row per line (provider × model × key, or a label, or an end user), then a TOTAL row; costs in USD,
    empty where no price was known."""
    group = GROUP_COLUMNS[statement.get("group_by", "")]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["tenant", "period_start", "period_end", *group, *CSV_COLUMNS[6:]])
    head = [statement["tenant"], statement["start"], statement["end"]]
    for line in statement["lines"]:
        writer.writerow([_cell(v) for v in head] + [_cell(line[column]) for column in group]
                        + [line[field] for field in COUNT_COLUMNS]
                        + [line["cost_usd"] or "", line["cache_hits"], line["cost_saved_usd"]])
    totals = statement["totals"]
    writer.writerow([_cell(v) for v in head] + ["TOTAL"] + [""] * (len(group) - 1)
                    + [totals[field] for field in COUNT_COLUMNS]
                    + [totals["cost_usd"] or "", totals["cache_hits"], totals["cost_saved_usd"]])
    return out.getvalue()
