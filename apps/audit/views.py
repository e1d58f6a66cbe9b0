"""The audit log page: the same entries, filters and visibility as GET /api/audit/."""
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render

from apps.applications.models import Project
from apps.applications.rules import visible

from .filters import AuditEntryFilter
from .models import AuditEntry
from .rules import visible_entries

PAGE_SIZE = 50


@login_required
def audit_log(request):
    entries = visible_entries(request.user, AuditEntry.objects.all())
    filters = AuditEntryFilter(request.GET or None, queryset=entries)
    if not filters.is_bound:
        results = entries
    else:  # an invalid filter shows its error and no entries, rather than ignoring it
        results = filters.qs if filters.is_valid() else entries.none()
    page = Paginator(results, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "audit/list.html", {
        "page": page, "filters": filters,
        "errors": filters.errors if filters.is_bound else {},
        "params": request.GET, "filtered": any(v for k, v in request.GET.items() if k != "page"),
        "projects": visible(request.user, Project.objects.order_by("name"), "pk")
        .values_list("name", flat=True),
        "object_types": entries.order_by("object_type").values_list("object_type", flat=True)
        .distinct(),
        "actions": entries.order_by("action").values_list("action", flat=True).distinct(),
    })
