from apps.core.api.routers import Router

from .views import ClusterViewSet

router = Router()
router.register("clusters", ClusterViewSet, basename="cluster")
urlpatterns = router.urls
