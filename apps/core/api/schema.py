"""The OpenAPI schema's account of permissions (drf-spectacular).

Every operation's description ends with who may call it, taken from the same place the API
enforces it: the view's `action_permissions` (apps/core/api/permissions.py), the model's
view/add/change/delete permission for standard actions, or `required_permission` for plain
views, with the rule that answers it (apps/*/rules.py)."""
from __future__ import annotations

import rules
from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from rest_framework.authentication import BasicAuthentication
from rest_framework.permissions import AllowAny

from .permissions import STANDARD, ActionPermission

# Who holds each rule, in words (predicates are named after what they check).
HOLDERS = {
    "is_platform_admin": "platform admins",
    "is_signed_in & is_superuser": "platform admins",
    "is viewer or more": "members of the object's project (viewer, operator, admin)",
    "is operator or more": "operators and admins of the object's project",
    "is admin or more": "admins of the object's project",
    "is_signed_in": "anyone signed in",
    "member_or_actor": "members of the entry's project, and the user who acted",
    "member_of_its_project": "members of its project",
    "always_deny": "no one",
}


def permission_of(view, action: str | None) -> tuple[bool, str | None]:
    """(needs ActionPermission, permission name or None) for `view` running `action`."""
    if not any(issubclass(p, ActionPermission) for p in getattr(view, "permission_classes", [])):
        return False, None
    if action is None:
        return True, getattr(view, "required_permission", None)
    explicit = getattr(view, "action_permissions", {})
    if action in explicit:
        return True, explicit[action]
    if action in STANDARD:
        model = _model_of(view)
        if model is not None:
            return True, f"{model._meta.app_label}.{STANDARD[action]}_{model._meta.model_name}"
    return True, None


def _model_of(view):
    queryset = getattr(view, "queryset", None)
    if queryset is not None:
        return queryset.model
    serializer = getattr(view, "serializer_class", None)
    return getattr(getattr(serializer, "Meta", None), "model", None)


def holders(perm: str) -> str:
    predicate = rules.permissions.permissions.get(perm) if rules.perm_exists(perm) else None
    if predicate is None:
        return "platform admins"
    words = []
    for part in predicate.name.replace("(", "").replace(")", "").split("|"):
        name = part.strip()
        text = HOLDERS.get(name, name)
        if text not in words:
            words.append(text)
    return "; ".join(words)


def describe(view, action: str | None, detail: bool) -> str:
    checked, perm = permission_of(view, action)
    if not checked:
        if any(issubclass(p, AllowAny) for p in getattr(view, "permission_classes", [])):
            return "**Permission:** none; no sign-in needed."
        if any(issubclass(a, BasicAuthentication)
               for a in getattr(view, "authentication_classes", [])):
            return ("**Permission:** signed in with username and password (HTTP Basic) or a "
                    "browser session.")
        return "**Permission:** signed in (API token or session)."
    if perm is None:
        text = "**Permission:** signed in (API token or session)"
        if action == "list":
            text += "; lists only what the user may see"
        return text + "."
    text = f"**Permission:** `{perm}`: {holders(perm)}."
    if detail:
        text += (" An object the user may not see answers 404; one they may see but not act "
                 "on, 403.")
    return text


class AutoSchema(SpectacularAutoSchema):
    def get_operation(self, *args, **kwargs):
        # Here rather than in get_description, which an extend_schema(description=) replaces.
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        action = getattr(self.view, "action", None)
        detail = bool(getattr(self.view, "detail", False)) or (
            action in ("retrieve", "update", "partial_update", "destroy"))
        permission = describe(self.view, action, detail)
        base = operation.get("description", "")
        operation["description"] = f"{base}\n\n{permission}" if base else permission
        return operation


def drop_unslashed_duplicates(endpoints):
    """apps/core/api/routers.Router answers each route with and without its trailing slash; the
    schema lists the slashed one only (PREPROCESSING_HOOKS)."""
    paths = {path for path, *_ in endpoints}
    return [(path, regex, method, callback) for path, regex, method, callback in endpoints
            if path.endswith("/") or f"{path}/" not in paths]


class LockoutAwareBasicScheme(OpenApiAuthenticationExtension):
    """HTTP Basic as the token endpoint takes it (apps/accounts/api/views.py)."""

    target_class = "apps.accounts.api.views.LockoutAwareBasicAuthentication"
    name = "basicAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "basic"}


class TokenScheme(KnoxTokenScheme):
    """API tokens (apps/accounts/authentication.py: knox's, checked without its sweep)."""

    target_class = "apps.accounts.authentication.TokenAuthentication"
