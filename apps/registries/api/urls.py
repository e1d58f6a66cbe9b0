from django.urls import path

from apps.core.api.routers import Router

from .views import RegistryViewSet
from .webhook import HarborWebhookView

router = Router()
router.register("registries", RegistryViewSet, basename="registry")
urlpatterns = router.urls + [
    path("webhook/harbor", HarborWebhookView.as_view(), name="webhook-harbor"),
]
