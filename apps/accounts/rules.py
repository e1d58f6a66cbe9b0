"""Users: platform admins only see and manage them (apps/core/access.py). Named here so the user
pages ask `user.has_perm("accounts.…")` like every other entry point, rather than reading
`is_superuser` themselves."""
import rules

from apps.core.access import is_platform_admin

for verb in ("view", "add", "change", "delete"):
    rules.set_perm(f"accounts.{verb}_user", is_platform_admin)
