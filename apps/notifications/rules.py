"""Who sees and manages a project's webhooks (see apps/core/access.py): the project's members see
them (never their URL) and their deliveries; only platform admins add, change or delete them,
as a webhook makes the server send requests to an address of one's choosing."""
import rules

from apps.applications.rules import project_ranks
from apps.core.access import is_platform_admin, is_signed_in


@rules.predicate
def member_of_its_project(user, obj=None) -> bool:
    if not is_signed_in(user):
        return False
    ranks = project_ranks(user)
    if obj is None:
        return bool(ranks)
    project_id = getattr(obj, "project_id", None)
    if project_id is None and hasattr(obj, "webhook"):
        project_id = obj.webhook.project_id
    return project_id in ranks


member = is_platform_admin | member_of_its_project
rules.set_perm("notifications", is_signed_in)
rules.set_perm("notifications.view_webhook", member)
rules.set_perm("notifications.add_webhook", is_platform_admin)
rules.set_perm("notifications.change_webhook", is_platform_admin)
rules.set_perm("notifications.delete_webhook", is_platform_admin)
rules.set_perm("notifications.view_delivery", member)
rules.set_perm("notifications.retry_delivery", is_platform_admin)
for verb in ("add", "change", "delete"):
    rules.set_perm(f"notifications.{verb}_delivery", rules.always_deny)
