"""A person at the admin and the dashboard, in Chromium driven by Playwright, against the running gateway
(uvicorn serving Django, Channels and /v1 with DEBUG off): log in, create a tenant and a key and see the key
once, call the API, watch the call appear in the live feed and (once drained) in the chart, and download
the month's statement.

Debian's Chromium (`apt-get install chromium`, which .ci/run does), not a browser Playwright downloads."""

import csv
import io
import os
import re
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from accounting.models import ApiKey, Tenant
from accounting.prices.defaults import load_default_prices
from accounting.usage.drain import drain
from accounting.usage.reports import today_utc

CHROMIUM = "/usr/bin/chromium"
WAIT_MS = 10_000
PASSWORD = "operator-pw-0123456789"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread (driven from a greenlet) for as long as
    # it is open, so Django would take this thread's plain ORM calls (fixtures, teardown) for calls from async
    # code. They are not: allow them for this module.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        yield from _launch(sync_playwright)
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def _launch(sync_playwright):
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture
def operator(gateway, settings):
    from django.contrib.auth import get_user_model

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # a fast login, for tests only

    get_user_model().objects.create_superuser("operator", "ops@example.com", PASSWORD)
    return "operator"


def log_in(page, gateway, username):
    page.goto(f"{gateway}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{gateway}/admin/")


def test_operator_creates_a_key_sees_the_call_live_and_in_the_chart_and_downloads_the_statement(
        gateway, provider, upstream, operator, page, tmp_path):
    load_default_prices()
    log_in(page, gateway, operator)

    # A tenant, through the admin's form.
    page.goto(f"{gateway}/admin/accounting/tenant/add/")
    page.fill("#id_slug", "initech")
    page.fill("#id_name", "Initech")
    page.click("input[name=_save]")
    page.wait_for_url(f"{gateway}/admin/accounting/tenant/")
    tenant = Tenant.objects.get(slug="initech")

    # A key for it: the plaintext is on the confirmation page, once.
    page.goto(f"{gateway}/admin/accounting/apikey/add/?tenant={tenant.pk}")
    page.fill("#id_name", "browser")
    page.click("input[name=_save]")
    plaintext = page.locator("#new-api-key").inner_text().strip()
    assert re.fullmatch(r"sk_gom_[A-Za-z0-9_-]{43}", plaintext)
    key = ApiKey.objects.get(tenant=tenant)
    page.click("text=Go to the key")
    page.wait_for_url(re.compile(r".*/admin/accounting/apikey/\d+/change/$"))
    assert plaintext not in page.content()
    assert key.prefix in page.content()
    page.goto(f"{gateway}/admin/accounting/apikey/")
    assert plaintext not in page.content() and key.prefix in page.content()

    # The dashboard, with its live feed connected.
    page.goto(f"{gateway}/dashboard/")
    page.wait_for_selector('#live-status[data-state="live"]')
    assert page.evaluate("typeof window.Chart") == "function"  # the vendored Chart.js, served without collectstatic
    assert page.evaluate("window.gomodelDashboard.charts.requests !== null")

    # An API call with the new key appears in the live feed.
    response = httpx.post(f"{gateway}/v1/chat/completions", headers={"Authorization": f"Bearer {plaintext}"},
                          json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]},
                          timeout=10)
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    row = page.locator(f'#live-rows tr[data-request-id="{request_id}"]')
    row.wait_for()
    cells = row.locator("td").all_inner_texts()
    assert cells[1:6] == ["initech", key.prefix, "gpt-4o-mini", "openai", "200"]
    assert cells[6] == "11 / 6" and cells[7] == "0.0000051"

    # Once drained, the chart has it (the page refreshes its numbers itself a little after a live row;
    # the Refresh button does it now).
    assert drain().inserted == 1
    page.click("#dashboard-refresh")
    page.wait_for_function("window.gomodelDashboard.state.data.totals.requests === 1", timeout=WAIT_MS)
    drawn = page.evaluate("window.gomodelDashboard.charts.requests.data.datasets[0].data.reduce((a, b) => a + b, 0)")
    assert drawn == 1
    assert page.locator('[data-kpi="requests"]').inner_text() == "1"
    assert page.locator('[data-kpi="total_tokens"]').inner_text() == "17"

    # The month's statement, downloaded as CSV.
    month = today_utc().strftime("%Y-%m")
    page.goto(f"{gateway}/dashboard/statements/")
    page.select_option("select[name=tenant]", "initech")
    page.fill("input[name=month]", month)
    page.click("#statement-form button[type=submit]")
    page.wait_for_selector("#statement-total")
    assert page.locator('#statement-total [data-total="requests"]').inner_text() == "1"
    with page.expect_download() as download_info:
        page.click("#statement-download")
    download = download_info.value
    assert download.suggested_filename == f"gomodel-statement-initech-{month}.csv"
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    *lines, total = rows
    assert total["provider"] == "TOTAL"
    assert [(r["provider"], r["model"], r["api_key"], r["requests"]) for r in lines] == [
        ("openai", "gpt-4o-mini", key.prefix, "1")]
    assert (total["requests"], total["prompt_tokens"], total["completion_tokens"], total["total_tokens"]) == (
        "1", "11", "6", "17")
    assert Decimal(total["cost_usd"]) == Decimal("0.0000051") == sum(Decimal(r["cost_usd"]) for r in lines)


def test_the_dashboard_sends_a_stranger_to_the_login_page(gateway, page):
    page.goto(f"{gateway}/dashboard/")
    page.wait_for_url(re.compile(r".*/admin/login/\?next=/dashboard/$"))
    assert page.locator("#id_username").is_visible()


def test_a_provider_config_gets_its_default_base_url_and_tests_its_connection(gateway, upstream, operator, page):
    log_in(page, gateway, operator)
    page.goto(f"{gateway}/admin/providers/providerconfig/add/")
    page.fill("#id_name", "fake")
    page.select_option("#id_provider_type", "groq")
    assert page.input_value("#id_base_url") == "https://api.groq.com/openai/v1"
    page.select_option("#id_provider_type", "openai")
    assert page.input_value("#id_base_url") == "https://api.openai.com/v1"
    page.fill("#id_base_url", upstream.base_url)
    page.fill("#id_api_key", "sk-browser-secret-9876")
    page.click("input[name=_continue]")
    page.wait_for_url(re.compile(r".*/admin/providers/providerconfig/\d+/change/$"))
    assert "sk-browser-secret-9876" not in page.content() and "…9876" in page.content()
    assert page.input_value("#id_api_key") == ""
    page.click("#test-connection")
    page.wait_for_selector('#connection-result[data-ok="1"]')
    assert "gpt-4o-mini" in page.locator("#connection-models").inner_text()
