from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from apps.accounts.urls import users_urlpatterns
from apps.audit import views as audit_views
from apps.core import views as core_views

urlpatterns = [
    path("", core_views.home, name="home"),
    path("system/", core_views.system, name="system"),
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("applications/", include("apps.applications.urls")),
    path("repositories/", include("apps.repositories.urls")),
    path("registries/", include("apps.registries.urls")),
    path("clusters/", include("apps.clusters.urls")),
    path("builds/", include("apps.builds.urls")),
    path("projects/", include("apps.applications.project_urls")),
    path("account/", include("apps.accounts.urls")),
    path("users/", include((users_urlpatterns, "users"))),
    path("audit/", audit_views.audit_log, name="audit"),
    path("admin/rq/", include("django_rq.urls")),
    path("admin/", admin.site.urls),
    path("api/", include("apps.core.api.urls")),
    path("api/", include("apps.accounts.api.urls")),
    path("api/", include("apps.clusters.api.urls")),
    path("api/", include("apps.repositories.api.urls")),
    path("api/", include("apps.applications.api.urls")),
    path("api/", include("apps.audit.api.urls")),
    path("api/", include("apps.notifications.api.urls")),
    path("api/", include("apps.registries.api.urls")),
    path("api/", include("apps.builds.api.urls")),
]
