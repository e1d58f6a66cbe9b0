from django.urls import path

from apps.core.api.routers import Router

from . import views

router = Router()
router.register("users", views.UserViewSet, basename="user")

urlpatterns = [
    path("auth/token", views.TokenCreateView.as_view(), name="api-token"),
    path("auth/token/revoke", views.TokenRevokeView.as_view(), name="api-token-revoke"),
    path("auth/token/revoke-all", views.TokenRevokeAllView.as_view(), name="api-token-revoke-all"),
] + router.urls
