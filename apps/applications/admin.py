from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import reverse

from apps.audit import services as audit
from apps.core.admin import PermissionCheckedAdmin, RecordAdmin
from apps.core.queues import QueueUnavailable

from . import services, spec
from .models import Application, HistoryEntry, ImageUpdater, Operation, Project, ProjectMember
from .rules import visible

STATUS_FIELDS = ["pinned_revision", "resume_automated", "sync_status", "health_status",
                 "health_message", "target_sha", "synced_sha", "conditions", "resources",
                 "reconciled_at", "created_at", "deletion"]


class ProjectMemberInline(admin.TabularInline):
    model = ProjectMember
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(PermissionCheckedAdmin):
    list_display = ["name", "description"]
    search_fields = ["name"]
    inlines = [ProjectMemberInline]

    def get_queryset(self, request):
        return visible(request.user, super().get_queryset(request), "pk")

    # The audit entry is written once the member inline is saved too (save_related).
    def save_model(self, request, obj, form, change):
        request.audit_project = (audit.changes(obj) if change else {},
                                 services.member_roles(obj) if change else {})
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        changes, members_before = getattr(request, "audit_project", ({}, {}))
        services.record_project_saved(form.instance, not change, changes, members_before)

    def delete_model(self, request, obj):
        services.delete_project(obj)

    def delete_queryset(self, request, queryset):
        for project in queryset:
            services.delete_project(project)


class ImageUpdaterInline(admin.StackedInline):
    """The app's image update policies, edited by whoever may edit the app (the parent). Asked
    without the app (Django does, for the queryset and the add page), the parent's own checks
    decide."""

    model = ImageUpdater
    extra = 0
    readonly_fields = ["last_status", "last_message", "last_tag", "last_commit", "last_run_at"]

    def _may_edit(self, request, obj) -> bool:
        return obj is None or request.user.has_perm("applications.change_application", obj)

    def has_view_permission(self, request, obj=None):
        return obj is None or request.user.has_perm("applications.view_application", obj)

    def has_add_permission(self, request, obj=None):
        return self._may_edit(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._may_edit(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._may_edit(request, obj)


class ApplicationForm(forms.ModelForm):
    class Meta:
        model = Application
        fields = "__all__"

    def clean(self):
        data = super().clean()
        for name, clean_field in spec.CLEANERS.items():  # what the engine accepts (spec.py)
            if name in data:
                try:
                    data[name] = clean_field(data[name])
                except spec.InvalidSpec as exc:
                    self.add_error(name, str(exc))
        if not self.errors and data.get("repository"):
            try:
                spec.check_chart_source(data.get("chart", ""), data.get("revision", ""),
                                        data["repository"].url, data.get("tool", ""))
            except spec.InvalidSpec as exc:
                self.add_error(exc.top_field, str(exc))
        if not self.errors:
            where = {k: data[k] for k in ("project", "repository", "cluster", "namespace")}
            try:
                services.check_project_allows(Application(**where))
            except services.NotPermitted as exc:
                raise forms.ValidationError(str(exc)) from None
        return data


@admin.register(Application)
class ApplicationAdmin(PermissionCheckedAdmin):
    form = ApplicationForm
    list_display = ["name", "project", "sync_status", "health_status", "target_sha_short",
                    "automated"]
    list_filter = ["sync_status", "health_status", ("project", admin.RelatedOnlyFieldListFilter),
                   "automated"]
    search_fields = ["name", "repository__url", "namespace"]
    readonly_fields = STATUS_FIELDS
    actions = ["sync_now", "refresh"]
    inlines = [ImageUpdaterInline]

    def get_inline_instances(self, request, obj=None):
        # Image update policies belong to an existing application: the add page (and a script
        # posting it) has none to manage.
        return super().get_inline_instances(request, obj) if obj is not None else []

    def get_queryset(self, request):
        return visible(request.user, super().get_queryset(request))

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "project":  # only projects where the user may add applications
            kwargs["queryset"] = Project.objects.filter(pk__in=[
                p.pk for p in Project.objects.all()
                if request.user.has_perm("applications.add_application", Application(project=p))])
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_sync_permission(self, request):
        return request.user.has_perm("applications.sync_application")

    def has_refresh_permission(self, request):
        return request.user.has_perm("applications.refresh_application")

    def save_model(self, request, obj, form, change):
        # The project may have changed in the form: the role must hold in the new one too.
        if not request.user.has_perm("applications.add_application", obj):
            raise PermissionDenied
        changes = audit.changes(obj) if change else {}
        super().save_model(request, obj, form, change)
        if not change:
            audit.record("application.created", obj,
                         details=audit.created_fields(obj, services.APP_FIELDS))
        elif changes:
            audit.record("application.updated", obj, details={"changed": changes})

    def save_formset(self, request, form, formset, change):
        if formset.model is not ImageUpdater:
            return super().save_formset(request, form, formset, change)
        from . import writeback  # through its service, so each policy change is audited

        for policy in formset.save(commit=False):
            writeback.save_policy(policy)
        for policy in formset.deleted_objects:
            writeback.delete_policy(policy)

    @admin.display(description="target", ordering="target_sha")
    def target_sha_short(self, app):
        return app.target_sha[:12]

    # --- deletion: the confirmation page offers Argo CD's choices (cascade foreground, the
    # default, background, or none): admin/applications/application/delete_confirmation.html
    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # it would delete without offering the choice
        return actions

    def get_deleted_objects(self, objs, request):
        # An application's operations and history go with it: deleting it needs
        # delete_application only, not a permission on those records (which no one has).
        deleted, counts, _, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, set(), protected

    def delete_model(self, request, obj):
        try:
            cascade = services.deletion_policy(request.POST.get("cascade"))
            request.deletion_started = services.delete_application(obj, request.user,
                                                                    cascade=cascade)
        except (services.ApplicationError, QueueUnavailable) as exc:
            request.deletion_refused = str(exc)

    def response_delete(self, request, obj_display, obj_id):
        refused = getattr(request, "deletion_refused", "")
        started = getattr(request, "deletion_started", None)
        if not (refused or started):
            return super().response_delete(request, obj_display, obj_id)
        if refused:
            self.message_user(request, f"{obj_display} was not deleted: {refused}", messages.ERROR)
        else:
            self.message_user(request, f"{obj_display}: its resources are being deleted "
                                       f"({started.options['cascade']}); the application goes "
                                       "once they are gone", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:applications_application_changelist"))

    @admin.action(description="Sync now", permissions=["sync"])
    def sync_now(self, request, queryset):
        apps = queryset.select_related("project", "repository", "cluster")
        for app in self.allowed(request, "applications.sync_application", apps):
            try:
                services.request_sync(app, request.user)
            except (services.ApplicationError, QueueUnavailable) as exc:
                self.message_user(request, f"{app.name}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{app.name}: sync queued", messages.SUCCESS)

    @admin.action(description="Refresh", permissions=["refresh"])
    def refresh(self, request, queryset):
        apps = self.allowed(request, "applications.refresh_application", queryset)
        try:
            for app in apps:
                services.schedule_refresh(app)
        except QueueUnavailable as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, f"refresh queued for {len(apps)} application(s)")


@admin.register(Operation)
class OperationAdmin(RecordAdmin):
    """Operations are written by the workers; the only change made here is to terminate one."""

    list_display = ["id", "application", "kind", "phase", "sha_short", "initiator", "created_at",
                    "finished_at"]
    list_filter = ["phase", "kind", "automated"]
    search_fields = ["application__name", "sha"]
    actions = ["terminate"]

    def get_queryset(self, request):
        return visible(request.user, super().get_queryset(request), "application__project")

    def has_terminate_permission(self, request):
        return request.user.has_perm("applications.terminate_operation")

    @admin.display(description="sha")
    def sha_short(self, op):
        return op.sha[:12]

    @admin.action(description="Terminate", permissions=["terminate"])
    def terminate(self, request, queryset):
        ops = queryset.select_related("application")
        for op in self.allowed(request, "applications.terminate_operation", ops):
            try:
                services.terminate(op)
            except services.ApplicationError as exc:
                self.message_user(request, str(exc), messages.WARNING)


@admin.register(HistoryEntry)
class HistoryEntryAdmin(RecordAdmin):
    list_display = ["application", "sha_short", "revision", "deployed_at", "deployed_by"]
    search_fields = ["application__name", "sha"]

    def get_queryset(self, request):
        return visible(request.user, super().get_queryset(request), "application__project")

    @admin.display(description="sha")
    def sha_short(self, entry):
        return entry.sha[:12]
