"""Every management write leaves one audit row (who, what, when, which fields), written in the same
transaction as the change; the rows never hold key material and are read-only in admin."""

import pytest
from django.contrib.admin.sites import site

from accounting.audit import services as audit
from accounting.models import ApiKey, AuditEntry, Tenant


def test_the_change_and_its_audit_row_commit_together(api, monkeypatch, make_tenant):
    def broken_record(*args, **kwargs):
        raise RuntimeError("audit table unavailable")

    tenant = make_tenant("kept")
    monkeypatch.setattr("accounting.tenants.services.record", broken_record)
    api.raise_request_exception = False
    response = api.post("/api/v1/tenants/", {"slug": "acme"}, format="json")
    assert response.status_code == 500
    assert not Tenant.objects.filter(slug="acme").exists()  # rolled back with the audit row

    response = api.post(f"/api/v1/tenants/{tenant.pk}/keys/", {"name": "ci"}, format="json")
    assert response.status_code == 500
    assert not ApiKey.objects.exists()
    response = api.post(f"/api/v1/tenants/{tenant.pk}/deactivate/")
    assert response.status_code == 500
    tenant.refresh_from_db()
    assert tenant.active


def test_audit_api_lists_and_filters(api, make_tenant):
    for slug in ("one", "two"):
        api.post("/api/v1/tenants/", {"slug": slug}, format="json")
    tenant = Tenant.objects.get(slug="one")
    api.post(f"/api/v1/tenants/{tenant.pk}/keys/", {"name": "ci"}, format="json")
    body = api.get("/api/v1/audit/").json()
    assert body["count"] == 3
    newest = body["results"][0]
    assert newest["action"] == "create" and newest["object_type"] == "apikey" and newest["actor"] == api.actor
    assert set(newest) == {"id", "created_at", "actor", "action", "object_type", "object_id", "object_repr",
                           "changes"}
    assert api.get("/api/v1/audit/", {"object_type": "tenant"}).json()["count"] == 2
    assert api.get("/api/v1/audit/", {"object_type": "tenant", "object_id": tenant.pk}).json()["count"] == 1
    assert api.get("/api/v1/audit/", {"actor": "nobody"}).json()["count"] == 0
    assert api.get("/api/v1/audit/", {"created_after": "2999-01-01T00:00:00Z"}).json()["count"] == 0
    entry = AuditEntry.objects.first()
    assert api.get(f"/api/v1/audit/{entry.pk}/").json()["id"] == entry.pk
    # read-only through the API too
    assert api.post("/api/v1/audit/", {}, format="json").status_code == 405
    assert api.delete(f"/api/v1/audit/{entry.pk}/").status_code == 405


def test_scrub_drops_secrets_wherever_they_are():
    from accounting.tenants.keys import display_prefix, generate_key

    plaintext = generate_key()
    changes = {"name": "ci", "api_key": "sk-up", "nested": {"key": plaintext, "plaintext": "p", "ok": 1},
               "list": [{"token": "t"}, plaintext, f"note: {plaintext}."], "key_hash": "h", "api_key_changed": True,
               "prefix": display_prefix(plaintext)}
    assert audit.scrub(changes) == {"name": "ci", "nested": {"ok": 1},
                                    "list": [{}, audit.REDACTED, f"note: {audit.REDACTED}."],
                                    "api_key_changed": True, "prefix": display_prefix(plaintext)}


@pytest.mark.django_db
def test_admin_is_read_only(rf, django_user_model):
    admin = site._registry[AuditEntry]
    request = rf.get("/admin/accounting/auditentry/")
    request.user = django_user_model.objects.create_superuser("root", password="pw")
    assert not admin.has_add_permission(request)
    assert not admin.has_change_permission(request)
    assert not admin.has_delete_permission(request)
    assert admin.has_view_permission(request)


def test_admin_pages_render(admin_client, master_api):
    master_api.post("/api/v1/tenants/", {"slug": "acme"}, format="json")
    entry = AuditEntry.objects.get()
    assert admin_client.get("/admin/accounting/auditentry/").status_code == 200
    page = admin_client.get(f"/admin/accounting/auditentry/{entry.pk}/change/")
    assert page.status_code == 200 and b"acme" in page.content
    assert admin_client.post(f"/admin/accounting/auditentry/{entry.pk}/delete/").status_code == 403
