from rest_framework.permissions import BasePermission

from .authentication import MasterActor, TenantKeyActor

TENANT_KEY_REFUSED = ("A tenant API key cannot use the management API; it is for /v1 only. Use "
                      "GOMODEL_MASTER_KEY or a staff user's token.")
NOT_STAFF = "Only staff users' tokens may use the management API."


class IsGatewayAdmin(BasePermission):
    """The master key, or an active staff user's token."""

    message = NOT_STAFF

    def has_permission(self, request, view):
        user = request.user
        if isinstance(user, MasterActor):
            return True
        if isinstance(user, TenantKeyActor):
            self.message = TENANT_KEY_REFUSED
            return False
        return bool(user is not None and user.is_authenticated and user.is_active and user.is_staff)
