"""Sign-ins, sign-outs and failed sign-ins, from Django's auth signals.

knox's token views send the same signals for an API token being created or revoked; those
record their own, clearer entries (apps/accounts/api/views.py), so DRF requests are skipped here.
"""
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from rest_framework.request import Request

from . import services


@receiver(user_logged_in, dispatch_uid="audit-login")
def logged_in(sender, request, user, **kwargs):
    if not isinstance(request, Request):
        services.record("auth.login", user, actor=user, object_type="user")


@receiver(user_logged_out, dispatch_uid="audit-logout")
def logged_out(sender, request, user, **kwargs):
    if not isinstance(request, Request) and user is not None:
        services.record("auth.logout", user, actor=user, object_type="user")


@receiver(user_login_failed, dispatch_uid="audit-login-failed")
def login_failed(sender, credentials, request=None, **kwargs):
    # Django has already masked the password in `credentials`; only the name is kept.
    username = str(credentials.get("username", ""))[:150]
    locked = bool(getattr(request, "axes_locked_out", False))
    services.record("auth.login_failed", None, actor="anonymous",
                    object_type="user", object_name=username,
                    details={"username": username, "locked_out": locked,
                             "via": "api" if isinstance(request, Request) else "login form"})
