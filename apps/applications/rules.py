"""Who may do what with projects, applications, operations and history (see apps/core/access.py).

A project's members see its applications; operators act on them; project admins also create,
edit and delete them. Checked with obj=None (list pages, "may this user add any application?"),
a role predicate asks whether the user holds that role in some project; the object check that
follows decides for the one at hand.
"""
import rules

from apps.core.access import is_platform_admin, is_signed_in

from .models import Application, HistoryEntry, Operation, Project, ProjectMember

RANK = {ProjectMember.Role.VIEWER: 1, ProjectMember.Role.OPERATOR: 2, ProjectMember.Role.ADMIN: 3}


def project_ranks(user) -> dict[int, int]:
    """{project id: rank of the user's role}, read once per user object (one request)."""
    ranks = getattr(user, "_project_ranks", None)
    if ranks is None:
        ranks = {pid: RANK[role] for pid, role in
                 ProjectMember.objects.filter(user=user).values_list("project_id", "role")}
        user._project_ranks = ranks
    return ranks


def project_id_of(obj) -> int | None:
    if isinstance(obj, Project):
        return obj.pk
    if isinstance(obj, Application):
        return obj.project_id
    if isinstance(obj, (Operation, HistoryEntry)):
        return obj.application.project_id
    return None


def role_at_least(role: str, project_of=None, name: str = ""):
    """A predicate: `user` holds `role` or more in the object's project (`project_of(obj)`,
    by default project_id_of), or in any project when there is no object."""
    project_of = project_of or project_id_of

    @rules.predicate(name=name or f"is {role} or more")
    def holds(user, obj=None) -> bool:
        if not is_signed_in(user):
            return False
        ranks = project_ranks(user)
        if obj is None:
            return any(rank >= RANK[role] for rank in ranks.values())
        return ranks.get(project_of(obj), 0) >= RANK[role]
    return holds


def visible_project_ids(user) -> list[int] | None:
    """The projects whose applications `user` sees; None means all (platform admins)."""
    if is_platform_admin(user):
        return None
    return list(project_ranks(user)) if is_signed_in(user) else []


def visible(user, queryset, project_field: str = "project"):
    """`queryset` narrowed to what `user` may see, by the field leading to the project."""
    ids = visible_project_ids(user)
    return queryset if ids is None else queryset.filter(**{f"{project_field}__in": ids})


viewer = is_platform_admin | role_at_least(ProjectMember.Role.VIEWER)
operator = is_platform_admin | role_at_least(ProjectMember.Role.OPERATOR)
project_admin = is_platform_admin | role_at_least(ProjectMember.Role.ADMIN)

RULES = {
    "applications": is_signed_in,  # the admin index shows the app to anyone signed in
    "applications.view_project": viewer,
    "applications.add_project": is_platform_admin,
    "applications.change_project": is_platform_admin,
    "applications.delete_project": is_platform_admin,
    "applications.view_projectmember": is_platform_admin,
    "applications.add_projectmember": is_platform_admin,
    "applications.change_projectmember": is_platform_admin,
    "applications.delete_projectmember": is_platform_admin,
    "applications.view_application": viewer,
    "applications.add_application": project_admin,
    "applications.change_application": project_admin,
    "applications.delete_application": project_admin,
    "applications.sync_application": operator,
    "applications.rollback_application": operator,
    "applications.refresh_application": operator,
    "applications.view_operation": viewer,
    "applications.terminate_operation": operator,
    "applications.view_historyentry": viewer,
}
for name, predicate in RULES.items():
    rules.set_perm(name, predicate)
