from apps.core.api.routers import Router

from .views import RegistryViewSet

router = Router()
router.register("registries", RegistryViewSet, basename="registry")
urlpatterns = router.urls
