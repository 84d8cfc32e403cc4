from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers

from accounting.audit.admin import actor

from . import provider_admin  # noqa: F401  (registers the provider config and model alias admins)
from .api.tokens import default_expiry, issue_staff_token, revoke_staff_token
from .models import StaffToken

# "View site" goes to the usage dashboard (the site's root is the /v1 API: a 404 JSON for a browser), and the
# app list lives on the admin's index and in the header, not in a sidebar that took 300 px from every list.
admin.site.site_url = "/dashboard/"
admin.site.enable_nav_sidebar = False


class StaffTokenForm(forms.ModelForm):
    class Meta:
        model = StaffToken
        fields = ["user", "name", "expires_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        user_field = self.fields.get("user")
        if isinstance(user_field, forms.ModelChoiceField):
            user_field.queryset = get_user_model().objects.filter(is_staff=True, is_active=True)
            user_field.help_text = "A staff user: the token may do what this user's permissions allow."
        if not self.instance.pk and "expires_at" in self.fields:
            self.fields["expires_at"].initial = default_expiry()


@admin.register(StaffToken)
class StaffTokenAdmin(admin.ModelAdmin):
    """Management API tokens of staff users: the plaintext is shown once, on the page after "Save"; only
    its hash is stored. Revoke with the list action; a revoked or expired token is refused (401)."""

    form = StaffTokenForm
    list_display = ["prefix", "user", "name", "created_at", "expires_at", "last_used_at", "state"]
    list_filter = ["revoked_at"]
    search_fields = ["prefix", "name", "user__username"]
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["user", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["user", "name", "expires_at"]
        return ["user", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at"]

    def has_change_permission(self, request, obj=None):
        # Nothing to edit on an issued token (the revoke action needs the change permission).
        return super().has_change_permission(request, obj) if obj is None else False

    @admin.display(description="state")
    def state(self, obj):
        if obj.revoked_at:
            return "revoked"
        return "active" if obj.is_usable() else "expired"

    def save_model(self, request, obj, form, change):
        if change:
            return
        token, plaintext = issue_staff_token(obj.user, obj.name, expires_at=obj.expires_at, actor=actor(request))
        obj.pk, obj.key_hash, obj.prefix, obj.created_at = token.pk, token.key_hash, token.prefix, token.created_at
        request._gomodel_new_token = plaintext  # in memory only, for response_add's page

    def response_add(self, request, obj, post_url_continue=None):
        plaintext = getattr(request, "_gomodel_new_token", None)
        if plaintext is None:
            return super().response_add(request, obj, post_url_continue)
        request._gomodel_new_token = None
        context = {
            **self.admin_site.each_context(request),
            "title": "Staff API token created", "subtitle": None, "opts": self.opts, "token": obj,
            "plaintext": plaintext, "list_url": reverse("admin:gomodel_stafftoken_changelist"),
        }
        response = TemplateResponse(request, "admin/gomodel/stafftoken/created.html", context)
        add_never_cache_headers(response)
        response["Cache-Control"] += ", no-store, private"
        response["Referrer-Policy"] = "no-referrer"
        return response

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke(self, request, queryset):
        count = 0
        for token in queryset.filter(revoked_at=None):
            revoke_staff_token(token, actor=actor(request))
            count += 1
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)
