from apps.core.api.routers import Router

from .views import DeliveryViewSet, WebhookViewSet

router = Router()
router.register("webhooks", WebhookViewSet, basename="webhook")
router.register("deliveries", DeliveryViewSet, basename="delivery")
urlpatterns = router.urls
