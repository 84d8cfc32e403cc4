from django.contrib import admin, messages

from .models import ApiKey, Tenant
from .services import do_create_api_key


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    fields = ["prefix", "name", "active", "expires_at", "last_used_at", "rpm_limit", "tpm_limit"]
    readonly_fields = ["prefix", "last_used_at"]
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False  # keys are issued from the API key page, which shows the secret once


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "active", "created_at"]
    list_filter = ["active"]
    search_fields = ["slug", "name"]
    inlines = [ApiKeyInline]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "tenant", "name", "active", "expires_at", "last_used_at", "rpm_limit", "tpm_limit"]
    list_filter = ["active", "tenant"]
    search_fields = ["prefix", "name", "tenant__slug"]
    readonly_fields = ["prefix", "last_used_at", "created_at"]
    actions = ["revoke", "reactivate"]

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        key, plaintext = do_create_api_key(obj.tenant, name=obj.name, rpm=obj.rpm_limit, tpm=obj.tpm_limit,
                                           expires_at=obj.expires_at)
        obj.pk, obj.key_hash, obj.prefix = key.pk, key.key_hash, key.prefix
        messages.warning(request, f"New key (shown once, copy it now): {plaintext}")

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        for key in queryset:
            key.active = False
            key.save(update_fields=["active"])

    @admin.action(description="Reactivate selected keys")
    def reactivate(self, request, queryset):
        for key in queryset:
            key.active = True
            key.save(update_fields=["active"])
