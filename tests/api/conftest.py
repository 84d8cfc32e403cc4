import pytest
from django.conf import settings
from rest_framework.test import APIClient


@pytest.fixture
def staff_token(db):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("ops", password="x", is_staff=True)
    user.user_permissions.set(management_permissions())
    return issue_token(user)


def issue_token(user) -> str:
    """A staff API token's plaintext (gomodel.models.StaffToken; only its hash is stored)."""
    from accounting.models import AuditEntry
    from gomodel.api.tokens import issue_staff_token

    plaintext = issue_staff_token(user)[1]
    AuditEntry.objects.filter(object_type="stafftoken").delete()  # the fixture's own row: tests count theirs
    return plaintext


def management_permissions(verbs=("view", "add", "change")):
    """The Django permissions an operator needs for everything the management API does."""
    from django.contrib.auth.models import Permission

    models = ["tenant", "apikey", "modelprice", "auditentry", "providerconfig"]
    return Permission.objects.filter(codename__in=[f"{verb}_{model}" for verb in verbs for model in models])


@pytest.fixture
def bare_staff_api(db):
    """A staff user's token with no model permissions at all."""
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("intern", password="x", is_staff=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(user)}")
    client.user = user
    return client


@pytest.fixture
def plain_user_token(db):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("someone", password="x", is_staff=False)
    return issue_token(user)


@pytest.fixture(params=["master", "staff"])
def admin_credentials(request, db):
    """(Authorization header value, the actor the audit trail names) for each kind of credential."""
    if request.param == "master":
        return f"Bearer {settings.GOMODEL_MASTER_KEY}", "master"
    return f"Bearer {request.getfixturevalue('staff_token')}", "ops"


@pytest.fixture
def api(admin_credentials):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=admin_credentials[0])
    client.actor = admin_credentials[1]
    return client


@pytest.fixture
def master_api(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {settings.GOMODEL_MASTER_KEY}")
    client.actor = "master"
    return client


@pytest.fixture
def tenant_api(db):
    """A client holding a valid tenant API key (which the management API refuses with 403)."""
    from accounting.tenants.services import do_create_api_key, do_create_tenant

    tenant = do_create_tenant("intruder", "Intruder")
    _, plaintext = do_create_api_key(tenant, name="ci")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client


@pytest.fixture
def make_tenant(db):
    from accounting.tenants.services import do_create_tenant

    return lambda slug="acme", name="Acme": do_create_tenant(slug, name)
