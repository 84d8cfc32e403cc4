"""Who may use the management API: the master key or a staff user's token; nobody else.

No credentials or unknown ones: 401 (with WWW-Authenticate). A valid tenant API key, or the token
of a user who is not staff: 403, with a message saying why."""

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from gomodel.api.permissions import NOT_STAFF, TENANT_KEY_REFUSED

URL = "/api/v1/tenants/"


def client(authorization=None):
    c = APIClient()
    if authorization is not None:
        c.credentials(HTTP_AUTHORIZATION=authorization)
    return c


@pytest.mark.django_db
def test_no_credentials_is_401_with_challenge():
    response = client().get(URL)
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
@pytest.mark.parametrize("header", ["Bearer nope", "Token nope", "Bearer sk_gom_notakey", "Bearer", "Bearer a b",
                                    f"Bearer {settings.GOMODEL_MASTER_KEY}x"])
def test_unknown_credentials_are_401(header):
    response = client(header).get(URL)
    assert response.status_code == 401, response.content
    assert set(response.json()) == {"detail"}


@pytest.mark.django_db
def test_other_schemes_are_not_credentials():
    assert client("Basic dXNlcjpwYXNz").get(URL).status_code == 401


def test_master_key_is_allowed(master_api):
    assert master_api.get(URL).status_code == 200


@pytest.mark.parametrize("keyword", ["Bearer", "Token", "bearer"])
def test_staff_token_is_allowed_with_either_keyword(staff_token, keyword):
    assert client(f"{keyword} {staff_token}").get(URL).status_code == 200


def test_tenant_key_is_403_with_a_clear_message(tenant_api):
    response = tenant_api.get(URL)
    assert response.status_code == 403
    assert response.json() == {"detail": TENANT_KEY_REFUSED}


def test_revoked_tenant_key_is_401(db):
    from accounting.tenants.services import do_create_api_key, do_create_tenant, do_revoke_api_key

    key, plaintext = do_create_api_key(do_create_tenant("t1"))
    do_revoke_api_key(key)
    assert client(f"Bearer {plaintext}").get(URL).status_code == 401


def test_non_staff_token_is_403(plain_user_token):
    response = client(f"Token {plain_user_token}").get(URL)
    assert response.status_code == 403
    assert response.json() == {"detail": NOT_STAFF}


def test_inactive_staff_user_is_401(staff_token):
    from gomodel.models import StaffToken, hash_staff_token

    user = StaffToken.objects.get(key_hash=hash_staff_token(staff_token)).user
    user.is_active = False
    user.save()
    assert client(f"Bearer {staff_token}").get(URL).status_code == 401


def test_no_master_key_configured_means_no_master(db, settings):
    master = settings.GOMODEL_MASTER_KEY
    settings.GOMODEL_MASTER_KEY = ""
    assert client(f"Bearer {master}").get(URL).status_code == 401
    assert client("Bearer ").get(URL).status_code == 401


def test_session_login_is_not_a_credential(db, django_user_model):
    """The admin's session cookie does not reach the management API (no CSRF surface)."""
    user = django_user_model.objects.create_superuser("root", password="pw")
    c = APIClient()
    c.force_login(user)
    assert c.get(URL).status_code == 401


def test_openapi_document_needs_no_credentials(db):
    response = client("Bearer garbage").get("/openapi.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
