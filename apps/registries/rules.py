"""Registries: everyone signed in sees them (never their credentials); platform admins manage
them, and only they check a connection or list tags, which send the stored credential."""
import rules

from apps.core.access import is_platform_admin, is_signed_in

for name, predicate in {
    "registries": is_signed_in,
    "registries.view_registry": is_signed_in,
    "registries.add_registry": is_platform_admin,
    "registries.change_registry": is_platform_admin,
    "registries.delete_registry": is_platform_admin,
    "registries.check_registry": is_platform_admin,
    "registries.list_tags": is_signed_in,
}.items():
    rules.set_perm(name, predicate)
