"""API tokens (django-rest-knox: stored as hashes, shown once, expiring). Each one created or
revoked goes to the audit log (apps/accounts/services.py)."""
from axes.handlers.proxy import AxesProxyHandler
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from knox import views as knox_views
from rest_framework import exceptions, serializers
from rest_framework.authentication import BasicAuthentication, SessionAuthentication

from .. import services
from ..lockout import LockedOut, lockout_message


class LockoutAwareBasicAuthentication(BasicAuthentication):
    """HTTP Basic, counted by django-axes like the login form: after too many failures of one
    username from one address it answers 429 with the reason (instead of a plain 401), even for
    the right password, until the lockout ends."""

    def authenticate_credentials(self, userid, password, request=None):
        try:
            return super().authenticate_credentials(userid, password, request)
        except exceptions.AuthenticationFailed:
            if request is not None and (getattr(request, "axes_locked_out", False) or
                                        AxesProxyHandler.is_locked(request, {"username": userid})):
                raise LockedOut(lockout_message(userid)) from None
            raise


NEW_TOKEN = inline_serializer("NewToken", {"token": serializers.CharField(),
                                          "expiry": serializers.DateTimeField(allow_null=True)})


@extend_schema(request=None, responses={200: NEW_TOKEN, 401: OpenApiTypes.OBJECT,
                                        429: OpenApiTypes.OBJECT})
class TokenCreateView(knox_views.LoginView):
    """POST with your username and password (HTTP Basic) or from a signed-in browser session:
    a new API token, shown once in the answer ({"token": ..., "expiry": ...}). Send it as
    `Authorization: Token <token>`. Too many wrong passwords for one username from one address
    lock it out for a while (429)."""

    authentication_classes = [LockoutAwareBasicAuthentication, SessionAuthentication]

    def create_token(self):
        return services.create_api_token(self.request.user)


@extend_schema(request=None, responses={204: None})
class TokenRevokeView(knox_views.LogoutView):
    """POST with a token: that token stops working."""

    def post(self, request, format=None):
        services.revoke_api_token(request._auth)
        return self.get_post_response(request)


@extend_schema(request=None, responses={204: None})
class TokenRevokeAllView(knox_views.LogoutAllView):
    """POST with a token: every token of its user stops working."""

    def post(self, request, format=None):
        services.revoke_all_api_tokens(request.user)
        return self.get_post_response(request)
