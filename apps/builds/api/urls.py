from apps.core.api.routers import Router

from .views import BuildViewSet, TagRuleViewSet

router = Router()
router.register("builds", BuildViewSet, basename="build")
router.register("tag-rules", TagRuleViewSet, basename="tagrule")
urlpatterns = router.urls
