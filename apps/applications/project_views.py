"""The project pages: who holds which role, which applications a project has and the recent
failed deliveries of its notification webhooks. Platform admins change the members and the
allowed sources and destinations here (services.save_project, audited; the restrictions are
checked by the API's ProjectSerializer, as a PATCH /api/projects/<id> would be)."""
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db.models import Count
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.core.access import require
from apps.notifications.models import Delivery

from . import services
from .api.serializers import ProjectSerializer
from .models import Project, ProjectMember
from .rules import visible
from .views import signed_in

REMOVE = "remove"
RECENT_FAILURES = 20


@signed_in
def project_list(request):
    projects = visible(request.user, Project.objects.order_by("name"), "pk").annotate(
        member_count=Count("members", distinct=True), app_count=Count("applications", distinct=True))
    return render(request, "projects/list.html", {
        "projects": projects, "may_add": request.user.has_perm("applications.add_project")})


def _visible_project(request, name) -> Project:
    project = Project.objects.filter(name=name).first()
    if project is None or not request.user.has_perm("applications.view_project", project):
        raise Http404(f"no project {name}")
    return project


@signed_in
def project_detail(request, name):
    return _render_detail(request, _visible_project(request, name))


def _render_detail(request, project, errors=None, typed=None, restriction_errors=None):
    may_change = request.user.has_perm("applications.change_project", project)
    context = {
        "project": project, "may_change": may_change, "errors": errors or [], "typed": typed or {},
        "restriction_errors": restriction_errors or {},
        "restrictions": typed if restriction_errors else restriction_lines(project),
        "failures": failed_deliveries(request.user, project),
        "members": project.members.select_related("user").order_by("user__username"),
        "applications": visible(request.user, project.applications.select_related("cluster", "repository")),
        "roles": ProjectMember.Role.choices,
        "users": get_user_model().objects.filter(is_active=True).exclude(
            project_roles__project=project).order_by("username").values_list("username", flat=True)
        if may_change else [],
    }
    return render(request, "projects/detail.html", context,
                  status=400 if errors or restriction_errors else 200)


def failed_deliveries(user, project) -> list[Delivery]:
    """The project's latest notifications whose delivery failed, or whose last attempt failed
    and will be tried again. Their error names the webhook's host only (never its URL)."""
    recent = (Delivery.objects.filter(webhook__project=project).exclude(last_error="")
              .exclude(state=Delivery.State.DELIVERED).select_related("webhook")
              .order_by("-id")[:RECENT_FAILURES])
    return [d for d in recent if user.has_perm("notifications.view_delivery", d)]


def restriction_lines(project) -> dict:
    return {"source_repos": "\n".join(project.source_repos),
            "destinations": "\n".join(f"{d.get('cluster', '*')}/{d.get('namespace', '*')}"
                                      for d in project.destinations)}


def parse_restrictions(post) -> tuple[dict, dict]:
    """The restriction textareas as the API's data (one glob per line; destinations as
    `cluster/namespace`), and the errors of lines that cannot be read."""
    repos = [line.strip() for line in post.get("source_repos", "").splitlines() if line.strip()]
    destinations, errors = [], []
    for number, line in enumerate(post.get("destinations", "").splitlines(), 1):
        if not line.strip():
            continue
        cluster, slash, namespace = line.strip().partition("/")
        if not slash or not cluster.strip() or not namespace.strip() or "/" in namespace:
            errors.append(f"line {number}: write cluster/namespace (globs allowed, e.g. "
                          f"prod-*/shop-*), not {line.strip()!r}")
        destinations.append({"cluster": cluster.strip(), "namespace": namespace.strip()})
    return {"source_repos": repos, "destinations": destinations}, (
        {"destinations": errors} if errors else {})


@signed_in
@require_POST
def project_members(request, name):
    """The member form: a role (or remove) per member, and one user to add."""
    project = _visible_project(request, name)
    require(request.user, "applications.change_project", project)
    roles, errors = set(ProjectMember.Role.values), []
    members = []
    for member in project.members.select_related("user"):
        role = request.POST.get(f"role-{member.user.username}", member.role)
        if role == REMOVE:
            continue
        if role not in roles:
            errors.append(f"{member.user.username}: unknown role {role!r}")
        members.append({"user": member.user, "role": role})
    new_user, new_role = request.POST.get("new_user", "").strip(), request.POST.get("new_role", "")
    if new_user:
        user = get_user_model().objects.filter(username=new_user).first()
        if user is None:
            errors.append(f"no user named {new_user!r}")
        elif any(m["user"].pk == user.pk for m in members):
            errors.append(f"{new_user} is already a member; change their role above")
        elif new_role not in roles:
            errors.append(f"{new_user}: choose a role ({', '.join(sorted(roles))})")
        else:
            members.append({"user": user, "role": new_role})
    if errors:
        return _render_detail(request, project, errors, {"new_user": new_user, "new_role": new_role})
    services.save_project(project, members)
    messages.success(request, f"Saved the members of {project.name}.")
    return redirect("projects:detail", name=project.name)


@signed_in
@require_POST
def project_restrictions(request, name):
    """Which repositories and destinations the project's applications may use (empty: any)."""
    project = _visible_project(request, name)
    require(request.user, "applications.change_project", project)
    typed = {key: request.POST.get(key, "") for key in ("source_repos", "destinations")}
    data, errors = parse_restrictions(request.POST)
    if not errors:
        serializer = ProjectSerializer(project, data=data, partial=True)
        if serializer.is_valid():
            serializer.save()
            messages.success(request, f"Saved what {project.name}'s applications may use.")
            return redirect("projects:detail", name=project.name)
        errors = {key: _flat(value) for key, value in serializer.errors.items()}
    return _render_detail(request, project, typed=typed, restriction_errors=errors)


def _flat(errors) -> list[str]:
    """DRF's nested error lists ({"destinations": [{"cluster": [...]}, {}]}) as lines."""
    if isinstance(errors, dict):
        return [f"{key}: {line}" for key, value in errors.items() for line in _flat(value)]
    if isinstance(errors, list):
        return [line for item in errors for line in _flat(item)]
    return [str(errors)]
