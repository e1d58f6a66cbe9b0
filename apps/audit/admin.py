from django.contrib import admin

from apps.core.admin import RecordAdmin

from .models import AuditEntry
from .rules import visible_entries


@admin.register(AuditEntry)
class AuditEntryAdmin(RecordAdmin):
    """Read-only: the log is written by the actions themselves, never by hand."""

    list_display = ["at", "actor_name", "action", "object_type", "object_name", "project_name",
                    "source_ip"]
    list_filter = ["action", "object_type"]
    search_fields = ["actor_name", "object_name", "project_name", "action"]
    date_hierarchy = "at"
    readonly_fields = [f.name for f in AuditEntry._meta.fields]

    def get_queryset(self, request):
        return visible_entries(request.user, super().get_queryset(request))
