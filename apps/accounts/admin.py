from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import Group

from apps.audit import services as audit

from . import services
from .models import User


@admin.register(User)
class PlatformUserAdmin(UserAdmin):
    """Users without Django's groups and permission rows, which grant nothing here: a user's
    rights are `is_superuser` (platform admin) and their roles in projects (Projects → members)."""

    fieldsets = [
        (None, {"fields": ("username", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name", "email")}),
        ("Access", {"fields": ("is_active", "is_staff", "is_superuser"),
                    "description": "staff: may open this admin; superuser: platform admin. "
                                   "Roles per project are set on each project."}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    ]
    list_filter = ["is_staff", "is_superuser", "is_active"]
    filter_horizontal = []

    # Through the account services, so each change lands in the audit log.
    def save_model(self, request, obj, form, change):
        services.save_user(obj)

    def delete_model(self, request, obj):
        services.delete_user(obj)

    def delete_queryset(self, request, queryset):
        for user in queryset:
            services.delete_user(user)

    def log_change(self, request, obj, message):
        if request.path.rstrip("/").endswith("/password"):  # the change-password page
            audit.record("user.updated", obj, details={"changed": {"password": audit.CHANGED}})
        return super().log_change(request, obj, message)


admin.site.unregister(Group)
