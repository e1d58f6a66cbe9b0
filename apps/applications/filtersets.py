"""Filters of the application list, as query parameters: the page's URL holds them, so a
filtered list can be shared and the back button works."""
import django_filters
from django import forms
from django.db.models import Count, Q

from . import labels
from .models import Application

SYNC_STATUSES = ("Synced", "OutOfSync", "Unknown")
HEALTH_STATUSES = ("Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown")
SORTS = {"name": "name", "project": "project__name", "sync": "sync_status",
         "health": "health_status", "synced": "last_synced", "namespace": "namespace",
         "cluster": "cluster__name"}


class LabelSelectorField(forms.CharField):
    """A label selector (`team=web,env!=prod,env`), read into a Q; the error names the part."""

    def clean(self, value):
        value = (super().clean(value) or "").strip()
        if not value:
            return None
        try:
            return labels.selector_query(value)
        except labels.InvalidLabel as exc:
            raise forms.ValidationError(str(exc)) from None


class LabelSelectorFilter(django_filters.Filter):
    field_class = LabelSelectorField

    def filter(self, qs, value):
        return qs if value is None else qs.filter(value)


class ApplicationFilterSet(django_filters.FilterSet):
    project = django_filters.CharFilter(field_name="project__name")
    cluster = django_filters.CharFilter(field_name="cluster__name")
    namespace = django_filters.CharFilter(field_name="namespace")
    repository = django_filters.CharFilter(field_name="repository__url")
    sync = django_filters.CharFilter(field_name="sync_status", lookup_expr="iexact")
    health = django_filters.CharFilter(field_name="health_status", lookup_expr="iexact")
    search = django_filters.CharFilter(method="search_text")
    labels = LabelSelectorFilter(label="Labels", help_text=(
        "a label selector, as in Argo CD: team=web,env!=prod (env!=prod also selects apps "
        "without env), env (has the label), !env, env in (dev,test), env notin (prod)"))
    sort = django_filters.OrderingFilter(fields=[(field, name) for name, field in SORTS.items()])

    class Meta:
        model = Application
        fields = []

    def filter_queryset(self, queryset):
        # django-filter leaves out a filter it cannot read; a selector that cannot be read
        # selects nothing rather than everything (the form names the error).
        if "labels" in self.form.errors:
            return queryset.none()
        return super().filter_queryset(queryset)

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
