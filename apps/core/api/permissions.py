"""The REST API's side of the one permission check (apps/core/access.py).

A viewset names, per action, the permission it needs (`action_permissions`); the model's
view/add/change/delete are the defaults for the standard actions. Collection actions (create,
list) ask "may the user do this at all"; detail actions are decided on the object, which the
viewset's queryset has already narrowed to what the user may see: an object one may not see
answers 404, one that one may see but not act on answers 403.
"""
from django.core.exceptions import ImproperlyConfigured
from rest_framework.permissions import BasePermission

from apps.core.access import refusal

STANDARD = {"list": "view", "retrieve": "view", "create": "add", "update": "change",
            "partial_update": "change", "destroy": "delete"}


def required_permission(view) -> str | None:
    """The permission the view's action needs; None: being signed in is enough."""
    action = getattr(view, "action", None)
    if action is None:  # a plain APIView / @api_view
        return getattr(view, "required_permission", None)
    explicit = getattr(view, "action_permissions", {})
    if action in explicit:
        return explicit[action]
    if action in STANDARD:
        opts = view.get_queryset().model._meta
        return f"{opts.app_label}.{STANDARD[action]}_{opts.model_name}"
    raise ImproperlyConfigured(f"{type(view).__name__}.{action} names no permission")


class ActionPermission(BasePermission):
    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_active):
            return False
        if getattr(view, "detail", False):
            return True  # decided on the object, after the queryset has hidden what is not visible
        return self._allowed(request, required_permission(view))

    def has_object_permission(self, request, view, obj) -> bool:
        return self._allowed(request, required_permission(view), obj)

    def _allowed(self, request, perm: str | None, obj=None) -> bool:
        if perm is None or request.user.has_perm(perm, obj):
            return True
        self.message = refusal(request.user, perm, obj)  # DRF's 403 detail
        return False
