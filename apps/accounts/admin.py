from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import Group

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


admin.site.unregister(Group)
