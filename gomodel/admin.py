from django.contrib import admin

from accounting.readonly_admin import ReadOnlyAdminMixin

from .models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: the audit trail is written by the management API, never edited by hand."""

    list_display = ["created_at", "actor", "action", "object_type", "object_id", "object_repr"]
    list_filter = ["action", "object_type", "actor"]
    search_fields = ["actor", "object_id", "object_repr"]
    date_hierarchy = "created_at"
    readonly_fields = ["created_at", "actor", "action", "object_type", "object_id", "object_repr", "changes"]
