"""Budgets through the management API: set on tenants and keys, validated, with this period's spend."""

from decimal import Decimal

import pytest

from accounting.models import ApiKey, Tenant


@pytest.fixture
def tenant_id(api):
    return api.post("/api/v1/tenants/", {"slug": "acme"}, format="json").json()["id"]


@pytest.mark.parametrize("field, value", [
    ("budget_usd", "-1"), ("budget_usd", "abc"), ("budget_usd", "12345678901.5"),
    ("budget_period", "yearly"), ("budget_soft_percent", 0), ("budget_soft_percent", 101),
])
def test_bad_budget_values_are_a_400_that_changes_nothing(api, tenant_id, field, value):
    response = api.patch(f"/api/v1/tenants/{tenant_id}/", {field: value}, format="json")
    assert response.status_code == 400 and field in response.json()
    tenant = Tenant.objects.get(pk=tenant_id)
    assert (tenant.budget_usd, tenant.budget_period, tenant.budget_soft_percent) == (None, "monthly", None)
    response = api.post(f"/api/v1/tenants/{tenant_id}/keys/", {"name": "k", field: value}, format="json")
    assert response.status_code == 400 and field in response.json()
    assert not ApiKey.objects.exists()


def test_budgets_are_set_on_tenants_and_keys_with_the_spend_beside_them(api, tenant_id):
    response = api.patch(f"/api/v1/tenants/{tenant_id}/", {"budget_usd": "250.50", "budget_period": "weekly",
                                                           "budget_soft_percent": 90}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["budget_usd"], body["budget_period"], body["budget_soft_percent"], body["budget_spent_usd"]) == (
        "250.5000000000", "weekly", 90, "0")
    created = api.post(f"/api/v1/tenants/{tenant_id}/keys/", {"name": "k", "budget_usd": "10",
                                                              "budget_period": "daily"}, format="json")
    assert created.status_code == 201, created.content
    key = ApiKey.objects.get()
    assert (key.budget_usd, key.budget_period, key.budget_soft_percent) == (Decimal("10"), "daily", None)
    assert created.json()["budget_spent_usd"] == "0"
    cleared = api.patch(f"/api/v1/keys/{key.pk}/", {"budget_usd": None}, format="json")
    assert cleared.status_code == 200 and cleared.json()["budget_spent_usd"] is None
