"""Account actions: the first admin, users, API tokens (each change goes to the audit log)."""
from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.db import transaction
from knox.models import AuthToken
from knox.settings import knox_settings

from apps.audit import services as audit

USER_FIELDS = ("username", "first_name", "last_name", "email", "is_active", "is_staff",
               "is_superuser")


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


def save_user(user, *, password_changed: bool = False):
    """Create or edit a user. The password is never recorded, only that it changed."""
    return audit.save_recorded(user, "user", USER_FIELDS,
                               {"password": audit.CHANGED} if password_changed else None)


def delete_user(user) -> None:
    name = user.get_username()
    audit.record("user.deleted", user, object_name=name)
    user.delete()


def create_api_token(user) -> tuple[AuthToken, str]:
    """A new API token for `user`: (its stored record, the token, to be shown once)."""
    instance, token = AuthToken.objects.create(user=user, expiry=knox_settings.TOKEN_TTL,
                                               prefix=knox_settings.TOKEN_PREFIX)
    audit.record("token.created", None, object_type="token", object_name=user.get_username(),
                 details={"user": user.get_username(), "expiry": instance.expiry})
    return instance, token


def revoke_api_token(instance: AuthToken) -> None:
    user = instance.user
    instance.delete()
    audit.record("token.revoked", None, object_type="token", object_name=user.get_username(),
                 details={"user": user.get_username(), "created": instance.created})


def revoke_all_api_tokens(user) -> int:
    count, _ = AuthToken.objects.filter(user=user).delete()
    audit.record("token.revoked_all", None, object_type="token", object_name=user.get_username(),
                 details={"user": user.get_username(), "count": count})
    return count
