"""An API key's labels through the management API: set when issued, changed, validated (400 naming the
field), audited (tests/e2e/test_labels.py: the gateway's calls then carry them)."""

import pytest

from accounting.models import ApiKey, AuditEntry


def test_issue_update_and_validate_labels(api, make_tenant):
    tenant = make_tenant("acme")
    response = api.post(f"/api/v1/tenants/{tenant.pk}/keys/", {"name": "ci", "labels": {"team": "search"}},
                        format="json")
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["labels"] == {"team": "search"}
    response = api.patch(f"/api/v1/keys/{created['id']}/", {"labels": {"team": "web", "env": "prod"}},
                         format="json")
    assert response.status_code == 200, response.content
    assert ApiKey.objects.get().labels == {"team": "web", "env": "prod"}
    assert AuditEntry.objects.filter(object_type="apikey", action="update").exists()


@pytest.mark.parametrize("labels", [{"team": 1}, {"": "x"}, {"a:b": "x"}, {"team": "x" * 65}, ["team:x"],
                                    {f"l{i}": "v" for i in range(17)}])
def test_bad_labels_are_refused(api, make_tenant, labels):
    tenant = make_tenant("acme")
    response = api.post(f"/api/v1/tenants/{tenant.pk}/keys/", {"labels": labels}, format="json")
    assert response.status_code == 400 and "labels" in response.json(), response.content
    assert not ApiKey.objects.exists()
