"""Rate limits and allow-lists in the admin: editable on tenants and keys (an allow-list as text lines,
validated), with the current usage of each limit beside them, read from Redis without consuming it."""

import re

import pytest
from django.conf import settings

from accounting.limits import ratelimits as rl
from accounting.models import ApiKey, Tenant

KEYS = "/admin/accounting/apikey/"
TENANTS = "/admin/accounting/tenant/"
NO_INLINES = {"api_keys-TOTAL_FORMS": "0", "api_keys-INITIAL_FORMS": "0", "api_keys-MIN_NUM_FORMS": "0",
              "api_keys-MAX_NUM_FORMS": "1000"}


def tenant_form(**fields):
    return {"slug": "beta", "name": "Beta", "active": "on", "monthly_budget_usd": "", "rpm_limit": "",
            "tpm_limit": "", "concurrency_limit": "", "allowed_models": "", **NO_INLINES, **fields}


def test_tenant_limits_and_allow_list_are_edited_as_lines(admin_client, db):
    tenant = Tenant.objects.create(slug="beta", name="Beta")
    response = admin_client.post(f"{TENANTS}{tenant.pk}/change/", tenant_form(
        rpm_limit="600", concurrency_limit="4", allowed_models="openai/*\r\n anthropic/claude-sonnet-4 \r\nsmart"))
    assert response.status_code == 302, response.context_data["adminform"].form.errors
    tenant.refresh_from_db()
    assert (tenant.rpm_limit, tenant.tpm_limit, tenant.concurrency_limit) == (600, None, 4)
    assert tenant.allowed_models == ["openai/*", "anthropic/claude-sonnet-4", "smart"]
    page = admin_client.get(f"{TENANTS}{tenant.pk}/change/").content.decode()
    assert "openai/*\nanthropic/claude-sonnet-4\nsmart" in page  # shown back as lines
    assert "0 of 600 used" in page and "0 of 4 used" in page


@pytest.mark.parametrize("fields, field", [
    ({"allowed_models": "openai/gpt*"}, "allowed_models"),
    ({"allowed_models": "*"}, "allowed_models"),
    ({"rpm_limit": "0"}, "rpm_limit"),
    ({"concurrency_limit": "-1"}, "concurrency_limit"),
])
def test_tenant_form_refuses_bad_values(admin_client, db, fields, field):
    tenant = Tenant.objects.create(slug="beta", name="Beta")
    response = admin_client.post(f"{TENANTS}{tenant.pk}/change/", tenant_form(**fields))
    assert response.status_code == 200 and field in response.context_data["adminform"].form.errors
    tenant.refresh_from_db()
    assert (tenant.rpm_limit, tenant.concurrency_limit, tenant.allowed_models) == (None, None, [])


def test_key_page_shows_current_usage_beside_the_limits_without_consuming(admin_client, acme, redis_sync):
    tenant, key, _ = acme
    key.rpm_limit, key.tpm_limit = 10, 1000
    key.save()
    tenant.concurrency_limit = 5
    tenant.save()
    scopes = [rl.key_scope(settings.LIMITS_PREFIX, tenant.id, key.id, 10, 1000, None),
              rl.tenant_scope(settings.LIMITS_PREFIX, tenant.id, None, None, 5)]
    for request_id in ("a", "b"):  # two requests in flight, each holding 100 tokens
        keys, args = rl.admit_args(request_id, scopes, 100, 60_000, True)
        assert rl.read_outcome(scopes, redis_sync.eval(rl.ADMIT, len(keys), *keys, *args)).allowed
    for _ in range(2):
        page = admin_client.get(f"{KEYS}{key.pk}/change/").content.decode()
    assert "2 of 10 used" in page and "8 left" in page
    used = int(re.search(r"(\d+) of 1000 used", page).group(1))
    assert 190 <= used <= 200  # GCRA refills ~17 tokens a second at 1,000 a minute
    assert "2 of 5 used" in page  # the tenant's requests in flight
    assert "no limit" in page


def test_key_issued_with_concurrency_and_allow_list(admin_client, acme):
    tenant, _, _ = acme
    response = admin_client.post(f"{KEYS}add/", {
        "tenant": tenant.pk, "name": "bot", "rpm_limit": "", "tpm_limit": "", "concurrency_limit": "2",
        "allowed_models": "anthropic/*", "expires_at_0": "", "expires_at_1": ""})
    assert response.status_code == 200
    key = ApiKey.objects.get(name="bot")
    assert (key.concurrency_limit, key.allowed_models) == (2, ["anthropic/*"])
    refused = admin_client.post(f"{KEYS}add/", {"tenant": tenant.pk, "name": "bad", "allowed_models": "x y",
                                                "expires_at_0": "", "expires_at_1": ""})
    assert "allowed_models" in refused.context_data["adminform"].form.errors
    assert not ApiKey.objects.filter(name="bad").exists()


def test_tenant_label_budgets_are_edited_and_validated_in_the_admin(admin_client, db):
    tenant = Tenant.objects.create(slug="beta", name="Beta")
    response = admin_client.post(f"{TENANTS}{tenant.pk}/change/", tenant_form(
        label_budgets='{"team:search": {"usd": "200", "period": "monthly"}}'))
    assert response.status_code == 302, response.context_data["adminform"].form.errors
    tenant.refresh_from_db()
    assert tenant.label_budgets == {"team:search": {"usd": "200", "period": "monthly"}}
    refused = admin_client.post(f"{TENANTS}{tenant.pk}/change/", tenant_form(
        label_budgets='{"team:search": {"usd": "-5"}}'))
    assert refused.status_code == 200 and "label_budgets" in refused.context_data["adminform"].form.errors
    tenant.refresh_from_db()
    assert tenant.label_budgets == {"team:search": {"usd": "200", "period": "monthly"}}
