from django.contrib import admin

from accounting.models import AuditEntry
from accounting.readonly_admin import ReadOnlyAdminMixin

from . import provider_admin  # noqa: F401  (registers the provider config and model alias admins)


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: the audit trail is written by the domain services (accounting.services), never by hand."""

    list_display = ["created_at", "actor", "action", "object_type", "object_id", "object_repr"]
    list_filter = ["action", "object_type", "actor"]
    search_fields = ["actor", "object_id", "object_repr"]
    date_hierarchy = "created_at"
    readonly_fields = ["created_at", "actor", "action", "object_type", "object_id", "object_repr", "changes"]
