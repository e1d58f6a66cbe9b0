"""The build pages: the list (live while a build runs) and a build's page with its log
streaming over the websocket (consumers.py, static/js/builds.js)."""
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.applications.views import signed_in

from . import services, trace
from .filtersets import filtered
from .models import Build, TagRule
from .rules import visible

PAGE_SIZE = 50


@signed_in
def build_list(request):
    builds = visible(request.user, Build.objects.select_related("repository", "project", "rule")
                     .defer("log"))
    filters, builds = filtered(request.GET, builds)
    page = Paginator(builds, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"filters": filters, "page": page, "builds": page.object_list,
               "statuses": Build.Status.choices, "actions": TagRule.Action.choices,
               "any_active": any(not b.finished for b in page.object_list)}
    if request.htmx and request.htmx.target == "build-results":
        return render(request, "builds/_results.html", context)
    return render(request, "builds/list.html", context)


@signed_in
def build_detail(request, pk):
    build = _visible_build(request, pk)
    context = {"build": build, "may_cancel": request.user.has_perm("builds.cancel_build", build)}
    part = request.GET.get("part") if request.htmx else None
    if part == "header":
        return render(request, "builds/_header.html", context)
    if part == "trace":  # fetched by the page once shown: it lists the clusters' pods
        context["trace"] = trace.build_trace(build, request.user)
        return render(request, "builds/_trace.html", context)
    return render(request, "builds/detail.html", context)


@signed_in
@require_POST
def build_cancel(request, pk):
    build = _visible_build(request, pk)
    try:
        services.cancel(build, request.user)
    except services.NotCancelable as exc:
        messages.error(request, str(exc))
    if request.htmx:
        return HttpResponse(status=204)  # the page's live header shows the change
    return redirect("builds:detail", pk=build.pk)


def _visible_build(request, pk) -> Build:
    build = Build.objects.select_related("repository", "project", "rule", "rule__registry") \
        .filter(pk=pk).first()
    if build is None or not request.user.has_perm("builds.view_build", build):
        raise Http404(f"no build #{pk}")
    return build
