from django.contrib import admin

from apps.core.admin import PermissionCheckedAdmin

from . import services
from .models import Build, TagRule
from .rules import visible


@admin.register(TagRule)
class TagRuleAdmin(PermissionCheckedAdmin):
    list_display = ["repository", "effective_pattern", "action", "registry", "project", "backend",
                    "enabled"]
    list_filter = ["action", "backend", "enabled"]

    def get_queryset(self, request):
        return visible(request.user, super().get_queryset(request))

    # Through the services, so each change lands in the audit log.
    def save_model(self, request, obj, form, change):
        services.save_tag_rule(obj)

    def delete_model(self, request, obj):
        services.delete_tag_rule(obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            services.delete_tag_rule(obj)


@admin.register(Build)
class BuildAdmin(PermissionCheckedAdmin):
    list_display = ["pk", "repository", "tag", "action", "status", "image", "created_at"]
    list_filter = ["status", "action"]
    search_fields = ["tag", "sha", "image"]
    readonly_fields = [f.name for f in Build._meta.fields]
    actions = ["cancel"]

    def get_queryset(self, request):
        return visible(request.user, super().get_queryset(request))

    @admin.action(description="Cancel the selected builds")
    def cancel(self, request, queryset):
        for build in self.allowed(request, "builds.cancel_build", queryset):
            if not build.finished:
                services.cancel(build, request.user)
