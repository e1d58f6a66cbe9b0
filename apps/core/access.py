"""The one permission check.

Every entry point (REST API, websockets, admin, management commands) asks
`user.has_perm(name, obj)`. django-rules answers it from the rules each domain app registers in
its `rules.py` (roles per project live in apps/applications/rules.py). Django's permission tables
grant nothing: `AuthenticationBackend` only checks passwords, so a row in auth_permission can never
widen what the rules allow.

| who | what |
|---|---|
| platform admin (superuser) | everything: clusters, repositories, projects, users |
| project admin | create, edit and delete the project's applications, and what an operator does |
| operator | sync, rollback, refresh, terminate within the project |
| viewer | read the project's applications, operations and history |
"""
from __future__ import annotations

import rules
from django.contrib.auth.backends import ModelBackend


class Forbidden(Exception):
    """The user may not do this; the message names the action and the object."""


@rules.predicate
def is_signed_in(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active)


is_platform_admin = is_signed_in & rules.is_superuser


def require(user, perm: str, obj=None) -> None:
    """Raise Forbidden unless `user` has `perm` (on `obj`)."""
    if user is None or not user.has_perm(perm, obj):
        raise Forbidden(refusal(user, perm, obj))


def refusal(user, perm: str, obj=None) -> str:
    """'vera may not sync application web': what was refused, to whom."""
    action = perm.split(".", 1)[-1].replace("_", " ")
    target = f" {obj}" if obj is not None and getattr(obj, "pk", None) else ""
    who = user.get_username() if user is not None and user.is_authenticated else "anonymous"
    return f"{who} may not {action}{target}"


class AuthenticationBackend(ModelBackend):
    """Passwords only. Permissions come from the rules alone (see the module docstring)."""

    def has_perm(self, user_obj, perm, obj=None):
        return False

    def has_module_perms(self, user_obj, app_label):
        return False

    def get_all_permissions(self, user_obj, obj=None):
        return set()
