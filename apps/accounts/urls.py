"""The account pages (apps/accounts/views.py)."""
from django.urls import path

from . import views

app_name = "accounts"
urlpatterns = [
    path("tokens", views.tokens, name="tokens"),
    path("tokens/revoke", views.revoke, name="revoke"),
]
