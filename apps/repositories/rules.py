"""Repositories: everyone signed in sees them (never their credentials); platform admins manage them."""
import rules

from apps.core.access import is_platform_admin, is_signed_in

for name, predicate in {
    "repositories": is_signed_in,
    "repositories.view_repository": is_signed_in,
    "repositories.add_repository": is_platform_admin,
    "repositories.change_repository": is_platform_admin,
    "repositories.delete_repository": is_platform_admin,
    "repositories.check_repository": is_platform_admin,  # sends the stored credential
}.items():
    rules.set_perm(name, predicate)
