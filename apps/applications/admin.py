from django import forms
from django.contrib import admin, messages

from . import services
from .models import Application, HistoryEntry, Operation, Project

STATUS_FIELDS = ["pinned_revision", "sync_status", "health_status", "health_message", "target_sha",
                 "synced_sha", "conditions", "resources", "reconciled_at", "created_at"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "description"]
    search_fields = ["name"]


class ApplicationForm(forms.ModelForm):
    class Meta:
        model = Application
        fields = "__all__"

    def clean(self):
        data = super().clean()
        if not self.errors:
            where = {k: data[k] for k in ("project", "repository", "cluster", "namespace")}
            try:
                services.check_project_allows(Application(**where))
            except services.NotPermitted as exc:
                raise forms.ValidationError(str(exc)) from None
        return data


@admin.register(Application)
class ApplicationAdmin(admin.ModelAdmin):
    form = ApplicationForm
    list_display = ["name", "project", "sync_status", "health_status", "target_sha_short",
                    "automated"]
    list_filter = ["sync_status", "health_status", "project", "automated"]
    search_fields = ["name", "repository__url", "namespace"]
    readonly_fields = STATUS_FIELDS
    actions = ["sync_now", "refresh"]

    @admin.display(description="target", ordering="target_sha")
    def target_sha_short(self, app):
        return app.target_sha[:12]

    @admin.action(description="Sync now")
    def sync_now(self, request, queryset):
        for app in queryset.select_related("project", "repository", "cluster"):
            try:
                services.request_sync(app, request.user)
            except services.ApplicationError as exc:
                self.message_user(request, f"{app.name}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{app.name}: sync queued", messages.SUCCESS)

    @admin.action(description="Refresh")
    def refresh(self, request, queryset):
        for app in queryset:
            services.schedule_refresh(app)
        self.message_user(request, f"refresh queued for {queryset.count()} application(s)")


@admin.register(Operation)
class OperationAdmin(admin.ModelAdmin):
    """Operations are written by the workers; the only change made here is to terminate one."""

    list_display = ["id", "application", "kind", "phase", "sha_short", "initiator", "created_at",
                    "finished_at"]
    list_filter = ["phase", "kind", "automated"]
    search_fields = ["application__name", "sha"]
    actions = ["terminate"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="sha")
    def sha_short(self, op):
        return op.sha[:12]

    @admin.action(description="Terminate", permissions=["view"])
    def terminate(self, request, queryset):
        for op in queryset:
            try:
                services.terminate(op)
            except services.ApplicationError as exc:
                self.message_user(request, str(exc), messages.WARNING)


@admin.register(HistoryEntry)
class HistoryEntryAdmin(admin.ModelAdmin):
    list_display = ["application", "sha_short", "revision", "deployed_at", "deployed_by"]
    list_filter = ["application"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="sha")
    def sha_short(self, entry):
        return entry.sha[:12]
