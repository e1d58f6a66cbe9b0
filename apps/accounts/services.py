"""Account actions: the first admin, users and their roles, API tokens (each change goes to the
audit log)."""
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


class AccountError(Exception):
    """An account change refused; the message says why (e.g. it would leave no platform admin)."""


@transaction.atomic
def create_user(user, password: str):
    """A new user with `password` (already validated); a platform admin may also open the
    Django admin. The audit entry says what the user was created with, never the password."""
    user.set_password(password)
    user.is_staff = user.is_superuser
    return save_user(user)


@transaction.atomic
def update_user(user, *, acting):
    """Save an edit of a user's name, email or platform-admin flag, made by `acting`."""
    stored = type(user).objects.select_for_update().get(pk=user.pk)
    if stored.is_superuser and not user.is_superuser:
        _keep_an_admin(user, acting, "remove the platform admin role of")
    if stored.is_superuser != user.is_superuser:
        user.is_staff = user.is_superuser
    return save_user(user)


@transaction.atomic
def set_password(user, password: str):
    """Give `user` a new password (already validated). Their sessions elsewhere end (Django ties
    a session to the password hash; the caller keeps its own with update_session_auth_hash);
    API tokens stay. The audit entry says only that the password changed."""
    user.set_password(password)
    return save_user(user, password_changed=True)


@transaction.atomic
def set_active(user, active: bool, *, acting):
    """Deactivate (no sign-in, no API token, open sessions end) or reactivate a user. Nothing
    is deleted: the user's roles, tokens and audit entries stay for a reactivation."""
    if user.is_active == active:
        return user
    if not active:
        _keep_an_admin(user, acting, "deactivate")
    user.is_active = active
    user.save(update_fields=["is_active"])
    audit.record("user.reactivated" if active else "user.deactivated", user)
    return user


def _keep_an_admin(user, acting, what: str) -> None:
    if user.pk == acting.pk:
        raise AccountError(f"You cannot {what} yourself: ask another platform admin.")
    others = get_user_model().objects.filter(is_superuser=True, is_active=True).exclude(pk=user.pk)
    if user.is_superuser and not others.exists():
        raise AccountError(f"Cannot {what} {user.get_username()}: they are the last active "
                           "platform admin.")


@transaction.atomic
def set_project_roles(user, roles: dict) -> list[str]:
    """Give `user` the role named per project ({Project: "viewer" | "operator" | "admin" | ""},
    "" for none). Each project that changes is saved through the project service, so its audit
    entry lists the member change as an edit of the project does. Returns the changed projects'
    names."""
    from apps.applications import services as applications

    changed = []
    for project, role in roles.items():
        members = list(project.members.select_related("user"))
        current = next((m.role for m in members if m.user_id == user.pk), "")
        if current == role:
            continue
        kept = [{"user": m.user, "role": m.role} for m in members if m.user_id != user.pk]
        applications.save_project(project, kept + ([{"user": user, "role": role}] if role else []))
        changed.append(project.name)
    return changed


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
