"""Who is calling the management API: the master key, a staff user's API token (gomodel.models.StaffToken:
stored hashed, expiring), or (recognised only to be refused with a clear 403) a tenant's API key."""

import hmac
from dataclasses import dataclass

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from accounting.tenants.keys import KEY_PREFIX, hash_key

KEYWORDS = ("bearer", "token")


class MasterActor:
    """The holder of GOMODEL_MASTER_KEY: may do everything; audited as "master"."""

    is_authenticated = True
    is_active = True
    is_staff = True
    is_superuser = True
    is_anonymous = False
    pk = None
    id = None
    username = "master"

    def get_username(self):
        return self.username

    def __str__(self):
        return self.username


@dataclass(frozen=True)
class TenantKeyActor:
    """A valid tenant API key: a real identity, but for /v1 only (IsGatewayAdmin refuses it)."""

    tenant_id: int
    key_id: int
    key_prefix: str
    is_authenticated = True
    is_active = True
    is_staff = False
    is_superuser = False
    is_anonymous = False

    def get_username(self):
        return f"tenant-key:{self.key_prefix}"


MASTER = MasterActor()


class ManagementAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        auth = get_authorization_header(request).split()
        if not auth or auth[0].lower().decode("latin-1") not in KEYWORDS:
            return None
        if len(auth) == 1:
            raise exceptions.AuthenticationFailed(_("Invalid Authorization header. No credentials provided."))
        if len(auth) > 2:
            raise exceptions.AuthenticationFailed(_("Invalid Authorization header. Credentials string should "
                                                    "not contain spaces."))
        try:
            token = auth[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed(_("Invalid Authorization header. Credentials string should "
                                                    "not contain invalid characters.")) from None
        master = settings.GOMODEL_MASTER_KEY
        if master and hmac.compare_digest(token.encode(), master.encode()):
            return MASTER, None
        if token.startswith(KEY_PREFIX):
            return self.authenticate_tenant_key(token)
        return self.authenticate_staff_token(token)

    def authenticate_staff_token(self, plaintext):
        from .tokens import find_staff_token

        token = find_staff_token(plaintext)
        if token is None:
            raise exceptions.AuthenticationFailed(_("Invalid, revoked or expired token."))
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return token.user, token

    def authenticate_tenant_key(self, token):
        from accounting.models import ApiKey

        key = ApiKey.objects.select_related("tenant").filter(key_hash=hash_key(token)).first()
        if key is None or not key.is_usable():
            raise exceptions.AuthenticationFailed(_("Invalid, revoked or expired API key."))
        return TenantKeyActor(tenant_id=key.tenant_id, key_id=key.id, key_prefix=key.prefix), None

    def authenticate_header(self, request):
        return 'Bearer realm="gomodel-management"'


def actor_name(user) -> str:
    """How the audit trail names whoever made a change."""
    if user is None:
        return "anonymous"
    return user.get_username()
