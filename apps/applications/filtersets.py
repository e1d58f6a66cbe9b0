"""Filters of the application list, as query parameters: the page's URL holds them, so a
filtered list can be shared and the back button works."""
import django_filters
from django.db.models import Count, Q

from .models import Application

SYNC_STATUSES = ("Synced", "OutOfSync", "Unknown")
HEALTH_STATUSES = ("Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown")
SORTS = {"name": "name", "project": "project__name", "sync": "sync_status",
         "health": "health_status", "synced": "last_synced", "namespace": "namespace",
         "cluster": "cluster__name"}


class ApplicationFilterSet(django_filters.FilterSet):
    project = django_filters.CharFilter(field_name="project__name")
    cluster = django_filters.CharFilter(field_name="cluster__name")
    namespace = django_filters.CharFilter(field_name="namespace")
    repository = django_filters.CharFilter(field_name="repository__url")
    sync = django_filters.CharFilter(field_name="sync_status", lookup_expr="iexact")
    health = django_filters.CharFilter(field_name="health_status", lookup_expr="iexact")
    search = django_filters.CharFilter(method="search_text")
    sort = django_filters.OrderingFilter(fields=[(field, name) for name, field in SORTS.items()])

    class Meta:
        model = Application
        fields = []

    def search_text(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(name__icontains=value) | Q(repository__url__icontains=value)
                               | Q(namespace__icontains=value) | Q(path__icontains=value))


def status_counts(params, queryset) -> dict[str, dict[str, int]]:
    """{"sync": {status: n}, "health": {status: n}} of the applications the other filters
    leave, so each count says what clicking it would show."""
    others = params.copy()
    for name in ("sync", "health", "page", "sort"):
        others.pop(name, None)
    narrowed = ApplicationFilterSet(others, queryset=queryset).qs.order_by()
    return {
        "sync": dict(narrowed.values_list("sync_status").annotate(n=Count("pk"))),
        "health": dict(narrowed.values_list("health_status").annotate(n=Count("pk"))),
    }
