"""The project pages: who holds which role and which applications a project has. Platform
admins change the members here (services.save_project, audited); the rest of a project (its
allowed sources and destinations) is edited in the admin or the API."""
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db.models import Count
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.core.access import Forbidden, require

from . import services
from .models import Project, ProjectMember
from .rules import visible
from .views import signed_in

REMOVE = "remove"


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


def _render_detail(request, project, errors=None, typed=None):
    may_change = request.user.has_perm("applications.change_project", project)
    context = {
        "project": project, "may_change": may_change, "errors": errors or [], "typed": typed or {},
        "members": project.members.select_related("user").order_by("user__username"),
        "applications": visible(request.user, project.applications.select_related("cluster", "repository")),
        "roles": ProjectMember.Role.choices,
        "users": get_user_model().objects.filter(is_active=True).exclude(
            project_roles__project=project).order_by("username").values_list("username", flat=True)
        if may_change else [],
    }
    return render(request, "projects/detail.html", context, status=400 if errors else 200)


@signed_in
@require_POST
def project_members(request, name):
    """The member form: a role (or remove) per member, and one user to add."""
    project = _visible_project(request, name)
    try:
        require(request.user, "applications.change_project", project)
    except Forbidden as exc:
        return HttpResponse(str(exc), status=403)
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
