"""The admin and the dashboard as a person sees them at 1400×900 in Chromium (#19): no list wider than
the window (the tenants' budget column was cut, the key inline on a tenant was 1,462 px with rows
~150 px tall), a one-day chart draws its point (pointRadius 0 drew nothing), a new provider is not
offered "Remove the stored key", "View site" leads somewhere, /api/v1/ answers."""

import datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from accounting.prices.defaults import load_default_prices
from accounting.tenants.services import do_create_api_key, do_create_tenant
from tests.browser.test_operator_flow import CHROMIUM, PASSWORD, WAIT_MS, browser, log_in, operator  # noqa: F401
from tests.dashboard.conftest import event, store_events

pytestmark = [pytest.mark.e2e, pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no Chromium")]

WIDTH, HEIGHT = 1400, 900


@pytest.fixture
def page(browser):  # noqa: F811
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture
def busy_tenant(gateway, make_provider, upstream):
    """A tenant with a budget, several keys with every limit and a long allow-list, and a day of usage."""
    load_default_prices()
    make_provider(name="openai-production-eu-west", base_url=upstream.base_url,
                  models="gpt-4o-mini,gpt-4.1-mini-2025-04-14,o3-mini-2025-01-31")
    tenant = do_create_tenant("initech-global-research", "Initech Global Research and Development",
                              budget_usd=Decimal("1234.56"))
    keys = []
    for i in range(4):
        key, _ = do_create_api_key(tenant, name=f"continuous-integration-pipeline-{i}", rpm=6000, tpm=2_000_000,
                                   concurrency=50, allowed_models=["openai/gpt-4o-mini", "openai/o3-mini-2025-01-31",
                                                                   "anthropic/claude-sonnet-4-20250514", "smart"],
                                   budget_usd=Decimal("99.99"))
        keys.append(key)
    when = datetime.datetime.now(datetime.timezone.utc).replace(hour=12)
    store_events(*[event(tenant, keys[i % 4], when=when - datetime.timedelta(minutes=i),
                         model="gpt-4.1-mini-2025-04-14" if i % 2 else "gpt-4o-mini",
                         provider="openai-production-eu-west", latency=120.0 + i, ttft=40.0) for i in range(12)])
    return tenant


OVERFLOW = """() => {
  const doc = document.documentElement;
  const out = {page: doc.scrollWidth - window.innerWidth, boxes: []};
  for (const el of document.querySelectorAll('#changelist .results, .inline-group, .gm-card, #content table')) {
    const over = el.scrollWidth - el.clientWidth;
    if (over > 1) out.boxes.push({cls: el.className || el.tagName, id: el.id, over});
  }
  for (const table of document.querySelectorAll('#content table')) {
    const r = table.getBoundingClientRect();
    if (r.right > window.innerWidth + 1) out.boxes.push({id: table.id || table.className, right: r.right});
  }
  return out;
}"""


SCREENS = Path(__file__).resolve().parents[2] / "var" / "test" / "screens"


def assert_no_horizontal_overflow(page, where):
    result = page.evaluate(OVERFLOW)
    SCREENS.mkdir(parents=True, exist_ok=True)  # what the assertion looked at, to look at too
    page.screenshot(path=str(SCREENS / f"{where.strip('/').replace('/', '_') or 'root'}.png"), full_page=True)
    assert result["page"] <= 0 and not result["boxes"], (where, result)


@pytest.mark.parametrize("path", [
    "/admin/accounting/tenant/",
    "/admin/accounting/apikey/",
    "/admin/accounting/usageevent/",
    "/admin/providers/providerconfig/",
    "/dashboard/",
])
def test_lists_fit_the_window(gateway, busy_tenant, operator, page, path):  # noqa: F811
    log_in(page, gateway, operator)
    page.goto(gateway + path)
    if path == "/dashboard/":  # its tables are filled by its script
        page.wait_for_selector("#table-by_model tbody tr td")
    assert_no_horizontal_overflow(page, path)


def test_the_key_inline_on_a_tenant_fits_and_its_rows_are_short(gateway, busy_tenant, operator, page):  # noqa: F811
    log_in(page, gateway, operator)
    page.goto(f"{gateway}/admin/accounting/tenant/{busy_tenant.pk}/change/")
    assert_no_horizontal_overflow(page, "tenant-change")
    rows = page.evaluate("""() => [...document.querySelectorAll('.inline-group tbody tr.has_original')]
                                  .map(tr => tr.getBoundingClientRect().height)""")
    assert rows and max(rows) <= 80, rows


def test_a_one_day_chart_draws_a_visible_point(gateway, busy_tenant, operator, page):  # noqa: F811
    log_in(page, gateway, operator)
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    page.goto(f"{gateway}/dashboard/?start={today}&end={today}&granularity=day")
    page.wait_for_function("window.gomodelDashboard && window.gomodelDashboard.charts.requests !== null")
    radii = page.evaluate("""() => Object.fromEntries(["spend", "errors", "latency", "ttft"].map(name => {
      const chart = window.gomodelDashboard.charts[name];
      return [name, [chart.data.labels.length, ...chart.getDatasetMeta(0).data.map(p => p.options.radius)]];
    }))""")
    for name, (labels, *points) in radii.items():
        assert labels == 1 and points and points[0] > 0, (name, radii)


def test_a_new_provider_is_not_offered_to_remove_a_stored_key(gateway, operator, page):  # noqa: F811
    log_in(page, gateway, operator)
    page.goto(f"{gateway}/admin/providers/providerconfig/add/")
    assert page.locator("#id_clear_api_key").count() == 0
    assert "Remove the stored key" not in page.content()


def test_view_site_leads_somewhere_useful(gateway, operator, page):  # noqa: F811
    log_in(page, gateway, operator)
    page.goto(f"{gateway}/admin/")
    href = page.locator("#user-tools a", has_text="View site").get_attribute("href")
    page.goto(gateway + href if href.startswith("/") else href)
    assert "not_found_error" not in page.content()
    assert page.title() and "404" not in page.title()


def test_the_api_root_answers(gateway):
    response = httpx.get(f"{gateway}/api/v1/", timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["openapi"] == "/openapi.json" and "tenants" in body["endpoints"]
