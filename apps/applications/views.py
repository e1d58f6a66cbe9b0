"""The dashboard's application pages: parse the request, call a service, render.

Every action is a POST (CSRF) checked with the same permission as the API; buttons are only
shown to users who hold it, and the server refuses anyone else anyway. A page's live parts are
fragments of the same templates, fetched again by htmx when the websocket says something
changed (templates/applications/*.html, static/js/live.js).
"""
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.db.models import Max
from django.http import Http404, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import patch_vary_headers
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from apps.builds import trace
from apps.core.access import refusal, require
from apps.core.queues import QueueUnavailable

from . import forms, inspection, listcache, services, spec
from .api.serializers import SyncRequestSerializer
from .filtersets import HEALTH_STATUSES, SORTS, SYNC_STATUSES, ApplicationFilterSet, status_counts
from .models import Application, HistoryEntry, Operation
from .rules import visible

PAGE_SIZES = (25, 50, 100, 200)
TRACED_REVISIONS = 5  # on the app page; the API traces every revision in the history
ACTIONS = {"sync": "applications.sync_application", "refresh": "applications.refresh_application",
           "rollback": "applications.rollback_application",
           "terminate": "applications.terminate_operation",
           "delete": "applications.delete_application", "edit": "applications.change_application"}


def signed_in(view):
    """login_required, except that an htmx request of an expired session makes the whole page
    go to the login page instead of swapping the login form into a fragment."""
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.htmx and not request.user.is_authenticated:
            return HttpResponseClientRedirect(redirect_to_login(request.htmx.current_url_abs_path or "/").url)
        try:
            response = login_required(view)(request, *args, **kwargs)
        except Http404:
            if not (request.htmx and "name" in kwargs):
                raise
            # A live fragment of an application deleted meanwhile: say so in its place.
            response = render(request, "applications/_gone.html", {"name": kwargs["name"]})
        # A page and its fragment share a URL: the browser's cache (the back button) must not
        # hand one out for the other.
        patch_vary_headers(response, ("HX-Request",))
        return response
    return wrapper


# --- the list ----------------------------------------------------------------------------------
# Stands in for the viewer's CSRF token in a cached page (listcache): safe HTML, so the
# template writes it unescaped, and nothing escaped (every value a user typed) can look like it.
CSRF_PLACEHOLDER = mark_safe("<!--csrf-token-->")


@signed_in
def application_list(request):
    fragment = bool(request.htmx and request.htmx.target == "results")
    if len(messages.get_messages(request)):  # shown once, to this viewer: rendered for them
        return _render_list(request, fragment)
    parts = ("page", fragment, listcache.viewer_of_page(request.user), request.build_absolute_uri())
    body = listcache.cached(
        parts, lambda: _render_list(request, fragment, csrf_token=CSRF_PLACEHOLDER).content)
    return HttpResponse(body.replace(CSRF_PLACEHOLDER.encode(), get_token(request).encode()))


def _render_list(request, fragment: bool, **extra):
    apps = visible(request.user, Application.objects.select_related("project", "repository", "cluster"))
    rows = apps.defer("resources")  # per-resource statuses, the bulk of a row; not listed
    if "synced" in request.GET.get("sort", ""):
        rows = rows.annotate(last_synced=Max("history__deployed_at"))
    filters = ApplicationFilterSet(request.GET, queryset=rows)
    # Ties (many apps share a status) broken by name, so no app hops between pages.
    results = filters.qs.order_by(*(filters.qs.query.order_by or ["name"]), "name", "pk")
    per_page = _int(request.GET.get("per_page"), 50)
    page = Paginator(results, per_page if per_page in PAGE_SIZES else 50).get_page(request.GET.get("page"))
    page.object_list = _with_last_synced(list(page.object_list))
    context = {
        "page": page, "filters": filters, "params": request.GET, "counts": status_counts(request.GET, apps),
        "view": "tiles" if request.GET.get("view") == "tiles" else "table",
        "sort": request.GET.get("sort", "name"), "sorts": SORTS, "page_sizes": PAGE_SIZES,
        "sync_statuses": SYNC_STATUSES, "health_statuses": HEALTH_STATUSES,
        "choices": _filter_choices(apps), "any_visible": apps.exists(),
        "filtered": any(request.GET.get(k) for k in ApplicationFilterSet.base_filters if k != "sort"),
        "may_add": request.user.has_perm("applications.add_application"),
        **extra,
    }
    template = "applications/_results.html" if fragment else "applications/list.html"
    return render(request, template, context)


def _with_last_synced(apps: list) -> list:
    """`last_synced` of a page of rows, in one query. Annotated on the whole list instead (as
    sorting by it needs), every count and sort would join all history entries of all apps."""
    missing = [app for app in apps if not hasattr(app, "last_synced")]
    if missing:
        last = dict(HistoryEntry.objects.filter(application__in=missing).order_by()
                    .values("application").annotate(at=Max("deployed_at"))
                    .values_list("application", "at"))
        for app in missing:
            app.last_synced = last.get(app.pk)
    return apps


def _filter_choices(apps) -> dict:
    def distinct(field):
        return sorted(v for v in apps.order_by().values_list(field, flat=True).distinct() if v)
    return {"project": distinct("project__name"), "cluster": distinct("cluster__name"),
            "namespace": distinct("namespace"), "repository": distinct("repository__url")}


def _int(value, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


# --- one application ---------------------------------------------------------------------------
def _visible_app(request, name) -> Application:
    app = Application.objects.select_related("project", "repository", "cluster").filter(name=name).first()
    if app is None or not request.user.has_perm("applications.view_application", app):
        raise Http404(f"no application {name}")
    return app


def _may(user, app) -> dict:
    return {action: user.has_perm(perm, app) for action, perm in ACTIONS.items()}


def _live_context(request, app) -> dict:
    operation = app.operations.select_related("initiated_by").first()
    return {"app": app, "may": _may(request.user, app), "operation": operation,
            "operation_active": operation is not None and operation.phase in Operation.ACTIVE,
            "tree": inspection.resource_tree(app)}


@signed_in
def application_detail(request, name):
    app = _visible_app(request, name)
    context = _live_context(request, app)
    part = request.GET.get("part") if request.htmx else None
    if part == "live":
        return render(request, "applications/_live.html", context)
    if part == "sync":
        if not context["may"]["sync"]:
            return HttpResponse(status=403)
        return render(request, "applications/_sync_form.html", context)
    if part == "trace":  # fetched by the page once shown: it lists the cluster's pods
        context["trace"] = trace.application_trace(app, request.user, limit=TRACED_REVISIONS)
        return render(request, "applications/_trace.html", context)
    return render(request, "applications/detail.html", context)


@signed_in
def resource_diff(request, name):
    app = _visible_app(request, name)
    key = request.GET.get("key", "")
    row = next((r for r in app.resources or [] if inspection.resource_key(r) == key), None)
    if row is None:
        raise Http404(f"{app.name} has no resource {key}")
    try:
        diff = inspection.resource_diff(app, key)
    except services.ApplicationError as exc:
        diff = {"error": str(exc)}
    else:
        diff["rows"] = inspection.differing_values(diff)
        diff["live_lines"] = inspection.annotated_lines(diff["live"], diff["differences"])
        diff["desired_lines"] = inspection.annotated_lines(diff["desired"], diff["differences"])
    template = "applications/_diff.html" if request.htmx else "applications/diff.html"
    return render(request, template, {"app": app, "row": row, "key": key, "diff": diff,
                                      "events": inspection.resource_events(app, row),
                                      "may": _may(request.user, app)})


@signed_in
def application_history(request, name):
    app = _visible_app(request, name)
    entries = list(app.history.select_related("operation", "operation__initiated_by"))
    commits = inspection.commit_details(app, [e.sha for e in entries])
    for entry in entries:
        entry.commit = commits.get(entry.sha, {})
    template = "applications/_history.html" if request.htmx else "applications/history.html"
    return render(request, template, {"app": app, "entries": entries, "may": _may(request.user, app)})


# --- new application and App details ----------------------------------------------------------
NEW_APP_DEFAULTS = {"revision": "HEAD", "path": ".", "retry_limit": 2, "sync_options": []}


@signed_in
def application_new(request):
    if not request.user.has_perm("applications.add_application"):
        return HttpResponse(refusal(request.user, "applications.add_application"), status=403)
    values, errors = dict(NEW_APP_DEFAULTS), {}
    if request.method == "POST":
        values = forms.typed(request.POST)
        data, errors = forms.validate(values)
        if data is not None:
            def create():
                # The project comes with the form: the role is checked in that project.
                require(request.user, "applications.add_application",
                        Application(project=data["project"]))
                return services.create_application(**data)
            app, errors = _saved(create)
            if not errors:
                messages.success(request, f"Created {app.name}; its first refresh is on the way.")
                return redirect("applications:detail", name=app.name)
    return render(request, "applications/form.html",
                  {"values": values, "errors": errors, "choices": forms.choices(request.user)})


@signed_in
def application_edit(request, name):
    app = _visible_app(request, name)
    if not request.user.has_perm("applications.change_application", app):
        return HttpResponse(refusal(request.user, "applications.change_application", app), status=403)
    values, errors = forms.initial(app), {}
    if request.method == "POST":
        values = {**forms.typed(request.POST), "name": app.name}
        data, errors = forms.validate(values, instance=app)
        if data is not None:
            def update():
                if data["project"].pk != app.project_id:  # moving it: admin of the new project too
                    require(request.user, "applications.add_application",
                            Application(project=data["project"]))
                return services.update_application(app, **data)
            _, errors = _saved(update)
            if not errors:
                messages.success(request, f"Saved {app.name}; it is refreshed with the new settings.")
                return redirect("applications:detail", name=app.name)
    choices = forms.choices(request.user)
    if app.project.name not in choices["projects"]:
        choices["projects"].insert(0, app.project.name)
    return render(request, "applications/form.html",
                  {"app": app, "values": values, "errors": errors, "choices": choices})


def _saved(save):
    """(what save() returned, {}) or (None, the errors to show on the form)."""
    try:
        return save(), {}
    except spec.InvalidSpec as exc:
        return None, forms.spec_error(exc)
    except services.ApplicationError as exc:
        return None, {"non_field_errors": [str(exc)]}


# --- actions -----------------------------------------------------------------------------------
def action(perm_name: str):
    """A POST-only action on one application: permission checked here (the buttons are only
    hidden), domain errors shown as a message, then back to the application page."""
    def decorate(view):
        @signed_in
        @require_POST
        @wraps(view)
        def wrapper(request, name):
            app = _visible_app(request, name)
            require(request.user, ACTIONS[perm_name], app)
            try:
                result = view(request, app)
            except (services.ApplicationError, QueueUnavailable) as exc:
                messages.error(request, str(exc))
                result = None
            if request.htmx:  # the page stays; its live parts fetch themselves again
                if result is not None:
                    return HttpResponseClientRedirect(result.url)
                response = render(request, "applications/_messages.html")
                response["HX-Trigger"] = "app:changed"
                return response
            return result or redirect("applications:detail", name=app.name)
        return wrapper
    return decorate


@action("sync")
def sync(request, app):
    form = SyncRequestSerializer(data={
        "prune": request.POST.get("prune") == "on", "dry_run": request.POST.get("dry_run") == "on",
        "resources": request.POST.getlist("resources"), "revision": request.POST.get("revision", "")})
    if not form.is_valid():
        messages.error(request, "; ".join(f"{field}: {' '.join(map(str, errors))}"
                                          for field, errors in form.errors.items()))
        return None
    op = services.request_sync(app, request.user, **form.validated_data,
                               apply_out_of_sync_only=request.POST.get("apply_out_of_sync_only") == "on",
                               replace=request.POST.get("replace") == "on")
    picked = len(op.options.get("resources", []))
    what = f"{picked} selected resource{'s' if picked != 1 else ''}" if picked else "all resources"
    messages.success(request, f"{'Dry run' if op.options['dry_run'] else 'Sync'} of {what} started.")
    return None


@action("refresh")
def refresh(request, app):
    hard = request.POST.get("hard") == "true"
    services.schedule_refresh(app, hard=hard)
    messages.success(request, f"{'Hard refresh' if hard else 'Refresh'} queued: the status below "
                              "updates when it is done.")


@action("rollback")
def rollback(request, app):
    entry = get_object_or_404(HistoryEntry, pk=_int(request.POST.get("history_id"), 0), application=app)
    mode = request.POST.get("mode", "pin")
    result = services.rollback(app, entry, request.user, mode=mode)
    if isinstance(result, Operation):
        messages.success(request, f"Rolling back to {entry.sha[:12]}; automated sync is off until you unpin.")
    else:
        messages.success(request, f"Committed revert {result[:12]} to Git; "
                         + ("automated sync applies it." if app.automated else "sync to apply it."))


@action("rollback")
def unpin(request, app):
    services.unpin(app)
    messages.success(request, f"{app.name} follows {app.revision} again.")


@action("terminate")
def terminate(request, app):
    op = get_object_or_404(Operation, pk=_int(request.POST.get("operation_id"), 0), application=app)
    try:
        services.terminate(op)
    except services.OperationFinished as exc:
        messages.info(request, str(exc))
        return None
    messages.success(request, f"Terminating the {op.kind}.")


@action("delete")
def delete(request, app):
    cascade = services.deletion_policy(request.POST.get("cascade", services.FOREGROUND))
    op = services.delete_application(app, request.user, cascade=cascade)
    if op is None:
        messages.success(request, f"Deleted {app.name}.")
    else:
        messages.success(request, f"Deleting {app.name} and its resources ({cascade}).")
    return redirect("applications:list")
