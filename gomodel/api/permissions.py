"""Who may do what through the management API. The master key may do everything; a staff user's token
what the user's Django model permissions allow (view/add/change per model, as in the admin); a tenant key
nothing (it is for /v1)."""

from rest_framework.permissions import BasePermission

from providers.models import ProviderConfig

from .authentication import MasterActor, TenantKeyActor

TENANT_KEY_REFUSED = ("A tenant API key cannot use the management API; it is for /v1 only. Use "
                      "GOMODEL_MASTER_KEY or a staff user's token.")
NOT_STAFF = "Only staff users' tokens may use the management API."
ENV_READ_ONLY = "This provider is defined by environment variables: it is read-only here; change it there."

STANDARD = {"list": "view", "retrieve": "view", "create": "add", "update": "change", "partial_update": "change",
            "destroy": "delete"}


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


def required_permission(view) -> str:
    """"app_label.codename" for the view's action: the standard ones by DRF action, custom actions by the
    view's `action_permissions` ({action: "change"} or {action: ("add", Model)})."""
    wanted = view.action_permissions.get(view.action) or STANDARD.get(view.action, "change")
    verb, model = wanted if isinstance(wanted, tuple) else (wanted, view.queryset.model)
    return f"{model._meta.app_label}.{verb}_{model._meta.model_name}"


class HasModelPermission(BasePermission):
    """Django model permissions for staff tokens (the master key has all); env-defined providers read-only."""

    message = "Your user lacks the Django permission for this."

    def has_permission(self, request, view):
        user = request.user
        if isinstance(user, MasterActor):
            return True
        permission = required_permission(view)
        self.message = f"Your user lacks the Django permission '{permission}'."
        return user.has_perm(permission)

    def has_object_permission(self, request, view, obj):
        if (isinstance(obj, ProviderConfig) and obj.source == ProviderConfig.SOURCE_ENV
                and view.action in ("update", "partial_update", "destroy", "disable")):
            self.message = ENV_READ_ONLY
            return False
        return True
