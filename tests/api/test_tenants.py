"""Tenants through the management API, with the master key and with a staff token (the `api` fixture
runs each test once per credential)."""

import pytest

from accounting.models import AuditEntry, Tenant


def test_create_list_retrieve_update_deactivate(api):
    response = api.post("/api/v1/tenants/", {"slug": "acme", "name": "Acme Corp"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["slug"] == "acme" and body["name"] == "Acme Corp" and body["active"] is True
    tenant_id = body["id"]

    listing = api.get("/api/v1/tenants/").json()
    assert listing["count"] == 1 and [t["slug"] for t in listing["results"]] == ["acme"]
    assert set(listing) == {"count", "next", "previous", "results"}

    assert api.get(f"/api/v1/tenants/{tenant_id}/").json()["name"] == "Acme Corp"

    response = api.patch(f"/api/v1/tenants/{tenant_id}/", {"name": "Acme Inc"}, format="json")
    assert response.status_code == 200 and response.json()["name"] == "Acme Inc"
    response = api.put(f"/api/v1/tenants/{tenant_id}/", {"name": "Acme", "active": True}, format="json")
    assert response.status_code == 200 and response.json()["name"] == "Acme"

    response = api.post(f"/api/v1/tenants/{tenant_id}/deactivate/")
    assert response.status_code == 200 and response.json()["active"] is False
    assert Tenant.objects.get(pk=tenant_id).active is False

    response = api.patch(f"/api/v1/tenants/{tenant_id}/", {"active": True}, format="json")
    assert response.json()["active"] is True
    response = api.delete(f"/api/v1/tenants/{tenant_id}/")  # nothing is deleted: usage rows keep their tenant
    assert response.status_code == 405 and response["Allow"] == "GET, PUT, PATCH, HEAD, OPTIONS"

    entries = list(AuditEntry.objects.filter(object_type="tenant", object_id=str(tenant_id)).order_by("id"))
    assert [e.action for e in entries] == ["create", "update", "update", "deactivate", "update"]
    assert {e.actor for e in entries} == {api.actor}
    assert entries[1].changes == {"name": ["Acme Corp", "Acme Inc"]}
    assert entries[3].changes == {"active": [True, False]}


def test_slug_is_fixed_once_created(api, make_tenant):
    tenant = make_tenant("acme")
    response = api.patch(f"/api/v1/tenants/{tenant.pk}/", {"slug": "other"}, format="json")
    assert response.status_code == 200 and response.json()["slug"] == "acme"


def test_an_update_that_changes_nothing_is_not_audited(api, make_tenant):
    tenant = make_tenant("acme", "Acme")
    api.patch(f"/api/v1/tenants/{tenant.pk}/", {"name": "Acme"}, format="json")
    assert not AuditEntry.objects.filter(action="update").exists()


@pytest.mark.parametrize("payload, field", [
    ({}, "slug"),
    ({"slug": "not a slug"}, "slug"),
    ({"slug": "x" * 65}, "slug"),
    ({"slug": "ok", "name": "n" * 201}, "name"),
    ({"slug": "ok", "active": "perhaps"}, "active"),
    ({"slug": "ok\x00"}, "slug"),
])
def test_validation_errors_use_drf_shape(api, payload, field):
    response = api.post("/api/v1/tenants/", payload, format="json")
    assert response.status_code == 400
    body = response.json()
    assert field in body and isinstance(body[field], list) and all(isinstance(m, str) for m in body[field])
    assert not AuditEntry.objects.exists()


def test_duplicate_slug_is_400(api, make_tenant):
    make_tenant("acme")
    response = api.post("/api/v1/tenants/", {"slug": "acme"}, format="json")
    assert response.status_code == 400 and "slug" in response.json()


def test_malformed_json_and_wrong_media_type(api):
    response = api.post("/api/v1/tenants/", data="{nope", content_type="application/json")
    assert response.status_code == 400 and "detail" in response.json()
    response = api.post("/api/v1/tenants/", data="slug=a", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    response = api.post("/api/v1/tenants/", data="[1, 2]", content_type="application/json")
    assert response.status_code == 400 and "non_field_errors" in response.json()


def test_unknown_tenant_is_404(api):
    assert api.get("/api/v1/tenants/999999/").status_code == 404
    assert api.get("/api/v1/tenants/99999999999999999999999/").status_code == 404  # no overflow: no route
    assert api.get("/api/v1/tenants/abc/").status_code == 404


def test_filters_and_pagination(api, make_tenant):
    for i in range(7):
        make_tenant(f"team-{i}", f"Team {i}")
    Tenant.objects.filter(slug="team-3").update(active=False)
    body = api.get("/api/v1/tenants/", {"limit": 3, "offset": 2}).json()
    assert body["count"] == 7 and [t["slug"] for t in body["results"]] == ["team-2", "team-3", "team-4"]
    assert "offset=5" in body["next"] and "limit=3" in body["previous"]
    assert api.get("/api/v1/tenants/", {"active": "false"}).json()["count"] == 1
    assert api.get("/api/v1/tenants/", {"active": "true"}).json()["count"] == 6
    assert api.get("/api/v1/tenants/", {"search": "team 5"}).json()["count"] == 1
    assert api.get("/api/v1/tenants/", {"created_after": "2999-01-01T00:00:00Z"}).json()["count"] == 0
    assert api.get("/api/v1/tenants/", {"created_before": "2999-01-01"}).json()["count"] == 7
    response = api.get("/api/v1/tenants/", {"active": "maybe", "created_after": "yesterday"})
    assert response.status_code == 400 and set(response.json()) == {"active", "created_after"}
    # a malformed limit falls back to the default rather than failing
    assert api.get("/api/v1/tenants/", {"limit": "x", "offset": "-4"}).json()["count"] == 7


def test_created_filters_take_any_offset_python_reads(api, make_tenant):
    """Found by schemathesis on PostgreSQL, which refuses offsets beyond ±15:59: the filter compares in UTC."""
    make_tenant("acme")
    response = api.get("/api/v1/tenants/", {"created_after": "0869-03-30T01:21:24+16:16"})
    assert response.status_code == 200 and response.json()["count"] == 1
    response = api.get("/api/v1/tenants/", {"created_before": "0001-01-01T00:00:00+16:00"})
    assert response.status_code == 400 and set(response.json()) == {"created_before"}
