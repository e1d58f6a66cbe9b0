from rest_framework.routers import SimpleRouter

from .views import RepositoryViewSet

router = SimpleRouter(trailing_slash="/?")
router.register("repositories", RepositoryViewSet, basename="repository")
urlpatterns = router.urls
