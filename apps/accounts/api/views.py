"""API tokens (django-rest-knox: stored as hashes, shown once, expiring)."""
from knox import views as knox_views
from rest_framework.authentication import BasicAuthentication, SessionAuthentication


class TokenCreateView(knox_views.LoginView):
    """POST with your username and password (HTTP Basic) or from a signed-in browser session:
    a new API token, shown once in the answer ({"token": ..., "expiry": ...}). Send it as
    `Authorization: Token <token>`."""

    authentication_classes = [BasicAuthentication, SessionAuthentication]


class TokenRevokeView(knox_views.LogoutView):
    """POST with a token: that token stops working."""


class TokenRevokeAllView(knox_views.LogoutAllView):
    """POST with a token: every token of its user stops working."""
