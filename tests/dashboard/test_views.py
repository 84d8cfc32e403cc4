"""The dashboard's pages and numbers with the test client: staff only, per day and per hour, breakdowns,
top keys, latency percentiles, filters, and the monthly statement (HTML and CSV)."""

import csv
import io
from datetime import date, timedelta
from decimal import Decimal

import orjson
import pytest
from django.contrib.auth import get_user_model

from accounting.usage import events as usage_event
from accounting.usage.reports import usage_report
from gomodel.dashboard import services

from .conftest import event, store_events, utc

DAY1, DAY2 = date(2025, 3, 10), date(2025, 3, 11)


@pytest.fixture
def usage(acme, prices):
    """acme: 3 requests on DAY1 (one a 500), 1 streamed on DAY2 at 14:xx; globex: 2 on DAY2 (no key)."""
    from accounting.tenants.services import do_create_api_key, do_create_tenant

    tenant, key, _ = acme
    key2, _ = do_create_api_key(tenant, name="second")
    globex = do_create_tenant("globex")
    store_events(
        event(tenant, key, when=utc(2025, 3, 10, 9, 5), latency=100.0),
        event(tenant, key, when=utc(2025, 3, 10, 9, 40), latency=200.0),
        event(tenant, key2, when=utc(2025, 3, 10, 23, 59), status=500, prompt=0, completion=0, latency=300.0),
        event(tenant, key, when=utc(2025, 3, 11, 14, 1), stream=True, latency=400.0, ttft=50.0, prompt=20,
              completion=10),
        event(globex, None, when=utc(2025, 3, 11, 8, 0), provider="groq", provider_type="groq", model="mystery-1",
              latency=1000.0),
        event(globex, None, when=utc(2025, 3, 11, 8, 30), provider="groq", provider_type="groq", model="mystery-1",
              latency=2000.0),
    )
    return tenant, key, key2, globex


def get_data(client, **params):
    response = client.get("/dashboard/data.json", params)
    assert response.status_code == 200, response.content
    return response.json()


def test_dashboard_is_for_staff_only(client, db):
    for url in ("/dashboard/", "/dashboard/data.json", "/dashboard/statements/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), url
    user = get_user_model().objects.create_user("viewer", password="pw-123456789")
    client.force_login(user)
    assert client.get("/dashboard/").status_code == 302  # logged in, not staff


def test_the_page_embeds_its_data_and_the_vendored_chart_library(admin_client, usage):
    page = admin_client.get("/dashboard/", {"start": "2025-03-10", "end": "2025-03-11"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "/static/dashboard/vendor/chartjs/chart.umd.min.js" in html and "/static/dashboard/dashboard.js" in html
    assert "cdn" not in html.lower()
    data = orjson.loads(html.split('<script id="dashboard-data" type="application/json">')[1].split("</script>")[0])
    assert data["totals"]["requests"] == 6
    assert 'id="live-feed"' in html and 'id="chart-requests"' in html
    script = admin_client.get("/static/dashboard/vendor/chartjs/chart.umd.min.js")
    assert script.status_code == 200 and b"Chart.js v4" in b"".join(script.streaming_content)[:200]


def test_per_day_series_totals_breakdowns_and_top_keys(admin_client, usage):
    tenant, key, key2, globex = usage
    data = get_data(admin_client, start="2025-03-09", end="2025-03-12")
    assert data["filters"] == {"tenant": None, "start": "2025-03-09", "end": "2025-03-12", "granularity": "day"}
    assert data["labels"] == ["2025-03-09", "2025-03-10", "2025-03-11", "2025-03-12"]
    series = data["series"]
    assert series["requests"] == [0, 3, 3, 0]
    assert series["errors"] == [0, 1, 0, 0]
    assert series["error_rate"] == [None, 0.3333, 0.0, None]
    assert series["total_tokens"] == [0, 30, 60, 0]
    # gpt-4o-mini: $0.15 in / $0.60 out per million; mystery-1 has no price.
    assert series["cost_usd"] == [0, 0.000009, 0.000009, 0]
    totals = data["totals"]
    assert (totals["requests"], totals["errors"], totals["total_tokens"]) == (6, 1, 90)
    assert totals["cost_usd"] == "0.000018"
    assert [(r["name"], r["requests"]) for r in data["by_tenant"]] == [("acme", 4), ("globex", 2)]
    assert [(r["name"], r["requests"], r["cost_usd"]) for r in data["by_provider"]] == [
        ("openai", 4, "0.000018"), ("groq", 2, None)]
    assert [r["name"] for r in data["by_model"]] == ["gpt-4o-mini", "mystery-1"]
    assert [(r["api_key"], r["tenant"], r["requests"], r["errors"]) for r in data["top_keys"]] == [
        (key.prefix, "acme", 3, 0), ("—", "globex", 2, 0), (key2.prefix, "acme", 1, 1)]
    # Over time, split by tenant, provider and model.
    assert [(g["name"], g["requests"]) for g in data["split"]["tenant"]] == [
        ("acme", [0, 3, 1, 0]), ("globex", [0, 0, 2, 0])]
    assert [(g["name"], g["cost_usd"]) for g in data["split"]["provider"]] == [
        ("openai", [0, 0.000009, 0.000009, 0]), ("groq", [0, 0, 0, 0])]
    assert [(g["name"], g["total_tokens"]) for g in data["split"]["model"]] == [
        ("gpt-4o-mini", [0, 30, 30, 0]), ("mystery-1", [0, 0, 30, 0])]


def test_the_split_keeps_the_top_groups_and_adds_up_the_rest(admin_client, usage, monkeypatch):
    monkeypatch.setattr(services, "SPLIT_TOP", 1)
    split = get_data(admin_client, start="2025-03-11", end="2025-03-11")["split"]["tenant"]  # hourly
    assert [g["name"] for g in split] == ["globex", "other"]
    assert split[0]["requests"][8] == 2 and split[1]["requests"][14] == 1


def test_latency_and_ttft_percentiles(admin_client, usage):
    latency = get_data(admin_client, start="2025-03-10", end="2025-03-11")["latency"]
    # 100, 200, 300, 400, 1000, 2000 ms: linear interpolation as PostgreSQL's percentile_cont
    assert latency["p50_ms"] == 350.0 and latency["p95_ms"] == 1750.0
    assert latency["ttft_p50_ms"] == latency["ttft_p95_ms"] == 50.0
    assert (latency["sample"], latency["truncated"]) == (6, False)
    series = get_data(admin_client, start="2025-03-10", end="2025-03-11", granularity="day")["series"]
    assert series["latency_p50_ms"] == [200.0, 1000.0]
    assert series["ttft_p50_ms"] == [None, 50.0]


def test_the_percentile_scan_is_bounded(admin_client, usage, settings):
    settings.DASHBOARD_SCAN_LIMIT = 2
    latency = get_data(admin_client, start="2025-03-10", end="2025-03-11")["latency"]
    assert (latency["sample"], latency["truncated"]) == (2, True)
    assert latency["p50_ms"] == 1200.0  # the two newest: 400 ms (14:01) and 2000 ms (08:30)


def test_per_hour_series_come_from_the_events(admin_client, usage):
    data = get_data(admin_client, start="2025-03-11", end="2025-03-11")  # auto: one day → hours
    assert data["filters"]["granularity"] == "hour"
    assert len(data["labels"]) == 24 and data["labels"][8] == "2025-03-11 08:00"
    assert data["series"]["requests"][8] == 2 and data["series"]["requests"][14] == 1
    assert sum(data["series"]["requests"]) == 3
    assert data["series"]["cost_usd"][14] == 0.000009
    assert data["series"]["latency_p95_ms"][8] == 1950.0
    two_days = get_data(admin_client, start="2025-03-10", end="2025-03-11", granularity="hour")
    assert len(two_days["labels"]) == 48 and sum(two_days["series"]["errors"]) == 1
    assert two_days["series"]["errors"][23] == 1


def test_tenant_filter(admin_client, usage):
    data = get_data(admin_client, tenant="globex", start="2025-03-10", end="2025-03-11")
    assert data["totals"]["requests"] == 2 and data["totals"]["cost_usd"] is None
    assert [r["name"] for r in data["by_tenant"]] == ["globex"]
    assert data["latency"]["sample"] == 2
    page = admin_client.get("/dashboard/", {"tenant": "acme", "start": "2025-03-10", "end": "2025-03-11"})
    assert '<option value="acme" selected>' in page.content.decode()


@pytest.mark.parametrize("params, param", [
    ({"tenant": "nobody"}, "tenant"),
    ({"start": "2025-13-01"}, "start"),
    ({"start": "2025-03-10", "end": "2025-03-01"}, "end"),
    ({"start": "2024-01-01", "end": "2025-06-01"}, "end"),
    ({"start": "2025-01-01", "end": "2025-03-01", "granularity": "hour"}, "granularity"),
    ({"granularity": "week"}, "granularity"),
])
def test_bad_filters_are_400(admin_client, db, params, param):
    response = admin_client.get("/dashboard/data.json", params)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert admin_client.get("/dashboard/", params).status_code == 400


def test_default_range_is_the_last_two_weeks(db):
    filters = services.parse_filters({}, today=date(2025, 3, 20))
    assert (filters.start, filters.end, filters.granularity) == (date(2025, 3, 7), date(2025, 3, 20), "day")


def test_percentile_is_linear_between_ranks():
    assert services.percentile([], 0.5) is None
    assert services.percentile([5.0], 0.95) == 5.0
    assert services.percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert services.percentile(list(map(float, range(1, 101))), 0.95) == 95.05


# -- statements --------------------------------------------------------------------------------------

# usage_report reads in a transaction of its own (it closes a connection left in a test's atomic block)
def test_statement_page_shows_lines_and_totals(admin_client, usage, transactional_db):
    page = admin_client.get("/dashboard/statements/", {"tenant": "acme", "month": "2025-03"})
    assert page.status_code == 200
    statement = page.context["statement"]
    assert statement["month"] == "2025-03" and statement["start"] == "2025-03-01" and statement["end"] == "2025-03-31"
    lines = {(line["model"], line["api_key"]): line for line in statement["lines"]}
    tenant, key, key2, _ = usage
    assert set(lines) == {("gpt-4o-mini", key.prefix), ("gpt-4o-mini", key2.prefix)}
    assert lines[("gpt-4o-mini", key.prefix)]["requests"] == 3
    assert statement["totals"]["requests"] == 4 and statement["totals"]["cost_usd"] == "0.000018"
    html = page.content.decode()
    assert 'href="/dashboard/statements/acme/2025-03.csv"' in html and "0.000018" in html
    assert admin_client.get("/dashboard/statements/").status_code == 200  # the picker alone


def test_statement_csv_adds_up_and_equals_the_usage_report(admin_client, usage, transactional_db):
    tenant = usage[0]
    response = admin_client.get("/dashboard/statements/acme/2025-03.csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="gomodel-statement-acme-2025-03.csv"'
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    *lines, total = rows
    assert total["provider"] == "TOTAL" and all(r["tenant"] == "acme" for r in rows)
    assert all((r["period_start"], r["period_end"]) == ("2025-03-01", "2025-03-31") for r in rows)
    for field in ("requests", "prompt_tokens", "completion_tokens", "total_tokens"):
        assert sum(int(line[field]) for line in lines) == int(total[field])
    assert sum(Decimal(line["cost_usd"]) for line in lines) == Decimal(total["cost_usd"])
    report = usage_report(tenant.id, "acme", date(2025, 3, 1), date(2025, 3, 31), [])
    assert int(total["requests"]) == report["totals"]["requests"] == 4
    assert total["cost_usd"] == report["totals"]["cost_usd"]


def test_statement_counts_events_not_drained_yet(admin_client, acme, prices, redis_sync, settings, transactional_db):
    from django.utils import timezone

    tenant, key, _ = acme
    now = timezone.now()
    store_events(event(tenant, key, when=now))
    redis_sync.xadd(settings.USAGE_STREAM, {"e": usage_event.encode(event(tenant, key, when=now))})
    month = now.strftime("%Y-%m")
    rows = list(csv.DictReader(io.StringIO(admin_client.get(f"/dashboard/statements/acme/{month}.csv")
                                           .content.decode())))
    assert rows[-1]["provider"] == "TOTAL" and rows[-1]["requests"] == "2"


def test_statement_of_an_unpriced_model_says_unknown(admin_client, usage, transactional_db):
    rows = list(csv.DictReader(io.StringIO(admin_client.get("/dashboard/statements/globex/2025-03.csv")
                                           .content.decode())))
    assert [(r["provider"], r["model"], r["api_key"], r["requests"], r["cost_usd"]) for r in rows] == [
        ("groq", "mystery-1", "", "2", ""), ("TOTAL", "", "", "2", "")]
    page = admin_client.get("/dashboard/statements/", {"tenant": "globex", "month": "2025-03"}).content.decode()
    assert "unknown" in page


def test_statement_errors(admin_client, usage, transactional_db):
    assert admin_client.get("/dashboard/statements/nobody/2025-03.csv").status_code == 404
    assert admin_client.get("/dashboard/statements/acme/2025-13.csv").status_code == 400
    assert admin_client.get("/dashboard/statements/", {"tenant": "acme", "month": "03-2025"}).status_code == 400
    assert admin_client.get("/dashboard/statements/", {"tenant": "nobody", "month": "2025-03"}).status_code == 404


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted():
    assert services._cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert services._cell("gpt-4o") == "gpt-4o"


def test_statement_lines_follow_the_month_boundaries(acme, prices, transactional_db):
    tenant, key, _ = acme
    store_events(event(tenant, key, when=utc(2025, 2, 28, 23, 59)), event(tenant, key, when=utc(2025, 3, 1, 0, 0)),
                 event(tenant, key, when=utc(2025, 3, 31, 23, 59)), event(tenant, key, when=utc(2025, 4, 1, 0, 0)))
    first, last = services.parse_month("2025-03")
    assert (first, last) == (date(2025, 3, 1), date(2025, 3, 31))
    statement = services.monthly_statement(tenant, first, last, entries=[])
    assert statement["totals"]["requests"] == 2
    assert services.parse_month(None, today=date(2024, 2, 10)) == (date(2024, 2, 1), date(2024, 2, 29))
    assert last - first == timedelta(days=30)


@pytest.mark.parametrize("path", ["/dashboard/", "/dashboard/data.json", "/dashboard/statements/"])
def test_staff_without_the_usage_view_permission_gets_403(client, django_user_model, path):
    """#19: a staff user with no Django permissions saw every tenant's usage and cost on the dashboard."""
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("intern", password="x", is_staff=True)
    client.force_login(user)
    assert client.get(path).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_usageevent"))
    user = django_user_model.objects.get(pk=user.pk)  # a fresh permission cache
    client.force_login(user)
    assert client.get(path).status_code == 200


def test_statement_by_label_and_by_user(admin_client, acme, prices, transactional_db):
    tenant, key, _ = acme
    store_events(event(tenant, key, when=utc(2025, 3, 10, 9, 0)).replace(labels={"team": "search"}, user="alice"),
                 event(tenant, key, when=utc(2025, 3, 11, 9, 0), prompt=40).replace(
                     labels={"team": "search", "env": "=cmd"}, user="bob"),
                 event(tenant, key, when=utc(2025, 3, 12, 9, 0)))
    response = admin_client.get("/dashboard/statements/acme/2025-03.csv", {"by": "label"})
    assert response["Content-Disposition"] == 'attachment; filename="gomodel-statement-acme-2025-03-by-label.csv"'
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    lines = {r["label"]: r for r in rows}
    assert set(lines) == {"team:search", "env:=cmd", "", "TOTAL"}  # "": the request without a label
    assert (lines["team:search"]["requests"], lines["env:=cmd"]["requests"], lines["TOTAL"]["requests"]) == (
        "2", "1", "3")
    plain = list(csv.DictReader(io.StringIO(admin_client.get("/dashboard/statements/acme/2025-03.csv")
                                            .content.decode())))
    assert lines["TOTAL"]["cost_usd"] == plain[-1]["cost_usd"]
    by_user = list(csv.DictReader(io.StringIO(admin_client.get(
        "/dashboard/statements/acme/2025-03.csv", {"by": "user"}).content.decode())))
    assert [(r["user"], r["requests"]) for r in by_user] == [("bob", "1"), ("alice", "1"), ("", "1"), ("TOTAL", "3")]
    assert sum(Decimal(r["cost_usd"]) for r in by_user[:-1]) == Decimal(by_user[-1]["cost_usd"])
    assert admin_client.get("/dashboard/statements/acme/2025-03.csv", {"by": "team"}).status_code == 400
    page = admin_client.get("/dashboard/statements/", {"tenant": "acme", "month": "2025-03"}).content.decode()
    assert 'id="statement-labels"' in page and "<code>team:search</code>" in page and "<code>alice</code>" in page


def test_top_labels_and_end_users(admin_client, acme, prices, transactional_db):
    tenant, key, _ = acme
    store_events(event(tenant, key, when=utc(2025, 3, 10, 9, 0)).replace(labels={"team": "search"}, user="alice"),
                 event(tenant, key, when=utc(2025, 3, 10, 10, 0), prompt=400).replace(
                     labels={"team": "web"}, user="alice"),
                 event(tenant, key, when=utc(2025, 3, 10, 11, 0), status=500).replace(labels={"team": "search"}),
                 event(tenant, key, when=utc(2025, 3, 10, 12, 0)))
    data = get_data(admin_client, start="2025-03-10", end="2025-03-10")
    # largest spend first: team:web's one dear request before team:search's two
    assert [(r["name"], r["requests"], r["errors"]) for r in data["top_labels"]] == [
        ("team:web", 1, 0), ("team:search", 2, 1)]
    assert [(r["name"], r["requests"]) for r in data["top_users"]] == [("alice", 2)]
    from accounting.models import UsageEvent

    alice = sum(e.cost for e in UsageEvent.objects.filter(user="alice"))
    assert Decimal(data["top_users"][0]["cost_usd"]) == alice > 0
    assert data["attribution_truncated"] is False
    page = admin_client.get("/dashboard/", {"start": "2025-03-10", "end": "2025-03-10"}).content.decode()
    assert 'id="table-top_labels"' in page and 'id="table-top_users"' in page
