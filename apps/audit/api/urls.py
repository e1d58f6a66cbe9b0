from apps.core.api.routers import Router

from .views import AuditEntryViewSet

router = Router()
router.register("audit", AuditEntryViewSet, basename="audit")
urlpatterns = router.urls
