"""The registry pages (apps/registries/views.py)."""
from django.urls import path

from . import views

app_name = "registries"
urlpatterns = [
    path("", views.registry_list, name="list"),
    path("<int:pk>/", views.registry_detail, name="detail"),
    path("<int:pk>/images/", views.registry_images_part, name="images"),
    path("<int:pk>/check/", views.registry_check, name="check"),
]
