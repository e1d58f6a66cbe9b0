from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from . import views

urlpatterns = [
    path("", views.api_root, name="api-root"),
    path("system/heartbeat", views.heartbeat, name="api-heartbeat"),
    # The OpenAPI 3 schema and its docs page (Swagger UI from drf-spectacular-sidecar, served
    # here). Open to anyone, like the docs of any public API: the schema holds no data.
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
