"""Account actions."""
from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.db import transaction


@transaction.atomic
def ensure_admin(username: str = "admin", email: str = "", password: str | None = None) -> str | None:
    """Create a superuser if none exists.

    Returns the password when one was generated (to be shown once), else None: either a superuser
    already existed or the caller supplied the password.
    """
    User = get_user_model()
    if User.objects.filter(is_superuser=True).exists():
        return None
    generated = None
    if not password:
        password = generated = secrets.token_urlsafe(12)
    User.objects.create_superuser(username=username, email=email, password=password)
    return generated
