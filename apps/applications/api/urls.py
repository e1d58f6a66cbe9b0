from django.urls import path
from apps.core.api.routers import Router

from .views import (ApplicationViewSet, GitWebhookView, OperationViewSet, ProjectViewSet,
                    WebhookSettingsView)

router = Router()
router.register("projects", ProjectViewSet, basename="project")
router.register("applications", ApplicationViewSet, basename="application")
router.register("operations", OperationViewSet, basename="operation")

urlpatterns = [
    path("webhook/git", GitWebhookView.as_view(), name="webhook-git"),
    path("webhook/settings", WebhookSettingsView.as_view(), name="webhook-settings"),
    *router.urls,
]
