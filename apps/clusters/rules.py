"""Clusters: everyone signed in sees them (never their credentials); platform admins manage them."""
import rules

from apps.core.access import is_platform_admin, is_signed_in

for name, predicate in {
    "clusters": is_signed_in,
    "clusters.view_cluster": is_signed_in,
    "clusters.add_cluster": is_platform_admin,
    "clusters.change_cluster": is_platform_admin,
    "clusters.delete_cluster": is_platform_admin,
    "clusters.check_cluster": is_platform_admin,  # sends the stored credential
}.items():
    rules.set_perm(name, predicate)
