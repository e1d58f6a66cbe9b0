"""Who may see and act on builds and tag rules (see apps/core/access.py): a project's viewers
see its builds and tag rules, its operators start and cancel builds, its admins edit the tag
rules; platform admins do everything."""
import rules

from apps.applications.models import ProjectMember
from apps.applications.rules import role_at_least, visible_project_ids
from apps.core.access import is_platform_admin, is_signed_in


def role_in_build_project(role: str):
    return role_at_least(role, project_of=lambda obj: getattr(obj, "project_id", None),
                         name=f"is {role} or more in the build's project")


def visible(user, queryset):
    """Builds or tag rules of the projects `user` belongs to (all for platform admins)."""
    ids = visible_project_ids(user)
    return queryset if ids is None else queryset.filter(project__in=ids)


viewer = is_platform_admin | role_in_build_project(ProjectMember.Role.VIEWER)
operator = is_platform_admin | role_in_build_project(ProjectMember.Role.OPERATOR)
project_admin = is_platform_admin | role_in_build_project(ProjectMember.Role.ADMIN)

for name, predicate in {
    "builds": is_signed_in,
    "builds.view_build": viewer,
    "builds.start_build": operator,
    "builds.cancel_build": operator,
    "builds.add_build": rules.always_deny,  # builds come from tags (or start_build)
    "builds.change_build": rules.always_deny,
    "builds.delete_build": is_platform_admin,
    "builds.view_tagrule": viewer,
    "builds.add_tagrule": project_admin,
    "builds.change_tagrule": project_admin,
    "builds.delete_tagrule": project_admin,
}.items():
    rules.set_perm(name, predicate)
