"""Admin pages whose every save and delete goes through the domain services (accounting/<domain>/services.py),
so each leaves its audit row in the same transaction, named after the staff user; and the read-only pages
over rows only the system writes (usage, the audit trail)."""

from django.contrib import admin

from ..models import AuditEntry
from . import services


def actor(request) -> str:
    return request.user.get_username()


def form_changes(form, adding: bool) -> dict:
    """{field: new} for a new row, {field: [old, new]} for a changed one (secret fields are scrubbed later)."""
    if adding:
        return {name: form.cleaned_data.get(name) for name in form.changed_data}
    return {name: [form.initial.get(name), form.cleaned_data.get(name)] for name in form.changed_data}


class AuditedModelAdmin(admin.ModelAdmin):
    def save_model(self, request, obj, form, change):
        services.do_save_form(actor(request), obj, form_changes(form, not change), adding=not change)

    def delete_model(self, request, obj):
        services.do_delete(actor(request), obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            services.do_delete(actor(request), obj)

    def save_formset(self, request, form, formset, change):
        """Inline rows: each saved (and audited) one by one."""
        instances = formset.save(commit=False)
        for obj in formset.deleted_objects:
            services.do_delete(actor(request), obj)
        by_instance = {id(f.instance): f for f in formset.forms}
        for obj in instances:
            row = by_instance.get(id(obj))
            adding = obj.pk is None
            services.do_save_form(actor(request), obj, form_changes(row, adding) if row else {}, adding=adding)
        formset.save_m2m()


class ReadOnlyAdminMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: the audit trail is written by the domain services (accounting/<domain>/services.py), never by hand."""

    list_display = ["created_at", "actor", "action", "object_type", "object_id", "object_repr"]
    list_filter = ["action", "object_type", "actor"]
    search_fields = ["actor", "object_id", "object_repr"]
    date_hierarchy = "created_at"
    readonly_fields = ["created_at", "actor", "action", "object_type", "object_id", "object_repr", "changes"]
