"""A tenant's API key gets 403 on every management operation (and nothing changes); no credentials
get 401. The operations are read from the OpenAPI document, so a new endpoint is covered at once."""

import json

import pytest
from rest_framework.test import APIClient

from accounting.models import ApiKey, AuditEntry, Tenant
from gomodel.api.openapi import openapi_document
from gomodel.api.permissions import TENANT_KEY_REFUSED
from providers.models import ProviderConfig


def management_operations():
    paths = openapi_document()["paths"]
    return [(method.upper(), path) for path, item in paths.items() if path.startswith("/api/v1/")
            for method in item if method in ("get", "post", "put", "patch", "delete")]


OPERATIONS = management_operations()


def test_every_resource_is_covered():
    paths = {path for _, path in OPERATIONS}
    for resource in ("tenants", "keys", "providers", "audit"):
        assert f"/api/v1/{resource}/" in paths and f"/api/v1/{resource}/{{id}}/" in paths


@pytest.fixture
def objects(db, make_provider):
    from accounting.tenants.services import do_create_api_key, do_create_tenant

    tenant = do_create_tenant("victim")
    key, _ = do_create_api_key(tenant)
    provider = make_provider(name="openai")
    return {"tenants": tenant.pk, "keys": key.pk, "providers": provider.pk, "audit": 1}


def _url(path, objects):
    resource = path.split("/")[3]
    return path.replace("{id}", str(objects.get(resource, 1)))


@pytest.mark.parametrize("method, path", OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_tenant_key_is_refused(tenant_api, objects, method, path):
    before = (Tenant.objects.count(), ApiKey.objects.filter(active=True).count(),
              ProviderConfig.objects.filter(enabled=True).count(), AuditEntry.objects.count())
    body = {"slug": "new", "name": "x", "tenant": objects["tenants"], "provider_type": "openai", "api_key": "k"}
    response = tenant_api.generic(method, _url(path, objects), data=json.dumps(body),
                                  content_type="application/json")
    assert response.status_code == 403, response.content
    assert response.json() == {"detail": TENANT_KEY_REFUSED}
    after = (Tenant.objects.count(), ApiKey.objects.filter(active=True).count(),
             ProviderConfig.objects.filter(enabled=True).count(), AuditEntry.objects.count())
    assert before == after


@pytest.mark.parametrize("method, path", OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_credentials_is_refused(objects, method, path):
    response = APIClient().generic(method, _url(path, objects), data="{}", content_type="application/json")
    assert response.status_code == 401
