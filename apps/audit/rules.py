"""Who sees which audit entries (see apps/core/access.py): platform admins all of them; anyone
else signed in, the entries of the projects they are a member of and their own actions. Entries
about clusters, repositories, users and other people's logins belong to no project: platform
admins only. Nobody edits the log."""
import rules
from django.db.models import Q

from apps.applications.rules import project_ranks, visible_project_ids
from apps.core.access import is_platform_admin, is_signed_in


@rules.predicate
def member_or_actor(user, entry=None) -> bool:
    if entry is None:
        return is_signed_in(user)
    if not is_signed_in(user):
        return False
    return entry.actor_id == user.pk or (entry.project_id is not None
                                         and entry.project_id in project_ranks(user))


def visible_entries(user, queryset):
    """`queryset` narrowed to the entries `user` may see."""
    ids = visible_project_ids(user)
    if ids is None:
        return queryset
    if not is_signed_in(user):
        return queryset.none()
    return queryset.filter(Q(project_id__in=ids) | Q(actor=user))


rules.set_perm("audit", is_signed_in)
rules.set_perm("audit.view_auditentry", is_platform_admin | member_or_actor)
for verb in ("add", "change", "delete"):
    rules.set_perm(f"audit.{verb}_auditentry", rules.always_deny)
