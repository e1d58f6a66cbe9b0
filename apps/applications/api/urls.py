from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import ApplicationViewSet, GitWebhookView, OperationViewSet, ProjectViewSet

router = SimpleRouter(trailing_slash="/?")
router.register("projects", ProjectViewSet, basename="project")
router.register("applications", ApplicationViewSet, basename="application")
router.register("operations", OperationViewSet, basename="operation")

urlpatterns = [
    path("webhook/git", GitWebhookView.as_view(), name="webhook-git"),
    *router.urls,
]
