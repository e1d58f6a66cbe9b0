"""Platform-wide permissions (see access.py)."""
import rules

from .access import is_platform_admin

# The global webhook secret, like the generated admin password, is for platform admins only.
rules.set_perm("core.view_webhook_settings", is_platform_admin)
