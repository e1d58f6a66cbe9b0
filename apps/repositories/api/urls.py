from apps.core.api.routers import Router

from .views import RepositoryViewSet

router = Router()
router.register("repositories", RepositoryViewSet, basename="repository")
urlpatterns = router.urls
