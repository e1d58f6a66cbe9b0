"""Filters of the audit log, shared by the API and the page: ?actor= &action= &object_type=
&object= &project= &since= &until= (ISO 8601 date or date-time)."""
import django_filters

from .models import AuditEntry


class AuditEntryFilter(django_filters.FilterSet):
    actor = django_filters.CharFilter(field_name="actor_name", lookup_expr="iexact",
                                      label="username, or a label such as webhook")
    action = django_filters.CharFilter(method="filter_action",
                                       label='an action ("application.sync") or its object type '
                                             'followed by a dot ("application.")')
    object_type = django_filters.CharFilter(field_name="object_type", lookup_expr="iexact")
    object = django_filters.CharFilter(field_name="object_name", lookup_expr="icontains",
                                       label="part of the object's name")
    project = django_filters.CharFilter(field_name="project_name", lookup_expr="iexact")
    since = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="lte")

    class Meta:
        model = AuditEntry
        fields = ["actor", "action", "object_type", "object", "project", "since", "until"]

    def filter_action(self, queryset, name, value):
        if value.endswith("."):
            return queryset.filter(action__startswith=value)
        return queryset.filter(action=value)
