"""#19's security findings on the management API: a deeply nested body is a 400 (was a 500 and a
RecursionError), staff tokens are stored only as hashes, shown once and expire (DRF's authtoken kept
them in plain text, forever)."""

import datetime
import hashlib

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from gomodel.api.tokens import issue_staff_token, revoke_staff_token
from gomodel.models import StaffToken

URL = "/api/v1/tenants/"


@pytest.fixture
def staff(db, django_user_model):
    from tests.api.conftest import management_permissions

    user = django_user_model.objects.create_user("ops", password="x", is_staff=True)
    user.user_permissions.set(management_permissions())
    return user


def api(token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.mark.parametrize("body, says", [
    (b"[" * 200_000 + b"]" * 200_000, "more than 100000 JSON values"),  # the finding: 200k levels, 400 KB
    (b"[" * 2_000 + b"]" * 2_000, "nests JSON deeper than 64 levels"),
    (b'{"a":' * 5_000 + b"1" + b"}" * 5_000, "nests JSON deeper than 64 levels"),
])
def test_a_deeply_nested_body_is_a_400_not_a_500(staff, body, says):
    token = issue_staff_token(staff)[1]
    response = api(token).generic("POST", URL, body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert says in response.json()["detail"]
    response = api(token).generic("POST", URL, b"[" + b"1," * 200_000 + b"1]", content_type="application/json")
    assert response.status_code == 400
    assert "more than" in response.json()["detail"]


def test_an_ordinary_body_still_parses(staff):
    response = api(issue_staff_token(staff)[1]).post(URL, {"slug": "acme", "name": "Acme"}, format="json")
    assert response.status_code == 201


def test_only_a_hash_of_the_token_is_stored(staff):
    token, plaintext = issue_staff_token(staff, "ci")
    assert token.key_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert plaintext.startswith("gm_staff_") and len(plaintext) > 40
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM gomodel_stafftoken")
        assert plaintext not in repr(cursor.fetchall())
    assert api(plaintext).get(URL).status_code == 200
    assert StaffToken.objects.get().last_used_at is not None


def test_tokens_expire_by_default_and_can_be_revoked(staff, settings):
    settings.STAFF_TOKEN_DAYS = 30
    token, plaintext = issue_staff_token(staff)
    assert abs(token.expires_at - timezone.now() - datetime.timedelta(days=30)) < datetime.timedelta(minutes=1)
    StaffToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    assert api(plaintext).get(URL).status_code == 401
    token, plaintext = issue_staff_token(staff)
    revoke_staff_token(token)
    assert api(plaintext).get(URL).status_code == 401


def test_the_admin_shows_a_new_token_once(staff, admin_client):
    page = admin_client.post("/admin/gomodel/stafftoken/add/", {
        "user": staff.pk, "name": "ci", "expires_at_0": "2099-01-01", "expires_at_1": "00:00:00"})
    assert page.status_code == 200
    plaintext = page.content.decode().split('id="new-staff-token">')[1].split("<")[0]
    assert api(plaintext).get(URL).status_code == 200
    token = StaffToken.objects.get()
    change = admin_client.get(f"/admin/gomodel/stafftoken/{token.pk}/change/")
    assert plaintext.encode() not in change.content
    assert token.prefix.encode() in change.content


def test_drf_authtoken_rows_are_moved_as_hashes(staff):
    """The migration: an existing plain-text DRF token keeps working as a hash; its plain text is gone."""
    from django.apps import apps

    from gomodel.migrations import __path__ as migrations_path  # noqa: F401
    migration = __import__("gomodel.migrations.0003_stafftoken", fromlist=["move_authtoken_tokens"])
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, created timestamp, user_id int)")
        cursor.execute("INSERT INTO authtoken_token VALUES (%s, %s, %s)",
                       ["0123456789abcdef0123456789abcdef01234567", timezone.now(), staff.pk])

    class Editor:
        pass

    Editor.connection = connection
    migration.move_authtoken_tokens(apps, Editor())
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM authtoken_token")
        assert cursor.fetchone()[0] == 0
        cursor.execute("DROP TABLE authtoken_token")
    assert api("0123456789abcdef0123456789abcdef01234567").get(URL).status_code == 200
    assert StaffToken.objects.get().expires_at is not None
