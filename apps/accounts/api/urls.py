from django.urls import path

from . import views

urlpatterns = [
    path("auth/token", views.TokenCreateView.as_view(), name="api-token"),
    path("auth/token/revoke", views.TokenRevokeView.as_view(), name="api-token-revoke"),
    path("auth/token/revoke-all", views.TokenRevokeAllView.as_view(), name="api-token-revoke-all"),
]
