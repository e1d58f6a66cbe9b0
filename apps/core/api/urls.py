from django.urls import path

from . import views

urlpatterns = [
    path("", views.api_root, name="api-root"),
    path("system/heartbeat", views.heartbeat, name="api-heartbeat"),
]
