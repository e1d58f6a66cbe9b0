"""Filters of the user list in the API: ?search= (part of a username), ?is_active=,
?is_platform_admin=, ?project= (a project's name: its members, whatever their role)."""
import django_filters

from apps.applications.models import Project

from .models import User


class UserFilterSet(django_filters.FilterSet):
    search = django_filters.CharFilter(field_name="username", lookup_expr="icontains",
                                       label="part of the username, any case")
    is_active = django_filters.BooleanFilter()
    is_platform_admin = django_filters.BooleanFilter(field_name="is_superuser")
    # A choice, not free text, so an unknown project is a 400 naming it rather than no users.
    project = django_filters.ModelChoiceFilter(
        field_name="project_roles__project", to_field_name="name", distinct=True,
        queryset=Project.objects.all(), label="project name: users with a role in it")

    class Meta:
        model = User
        fields = ["search", "is_active", "is_platform_admin", "project"]
