"""Filters of the build list (page and API): query parameters validated into one queryset."""
import django_filters

from .models import Build, TagRule


class BuildFilterSet(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Build.Status.choices)
    action = django_filters.ChoiceFilter(choices=TagRule.Action.choices)
    project = django_filters.CharFilter(field_name="project__name")
    repository = django_filters.NumberFilter(field_name="repository_id")
    tag = django_filters.CharFilter(lookup_expr="icontains")
    sha = django_filters.CharFilter(lookup_expr="startswith")
    rule = django_filters.NumberFilter(field_name="rule_id")

    class Meta:
        model = Build
        fields = ["status", "action", "project", "repository", "tag", "sha", "rule"]


def filtered(params, queryset):
    """(filterset, queryset): the queryset narrowed by `params`; invalid values in
    filterset.errors, naming the parameter."""
    filters = BuildFilterSet(params, queryset=queryset)
    return filters, (filters.qs if filters.is_valid() else queryset.none())
