"""The build pages (apps/builds/views.py)."""
from django.urls import path

from . import views

app_name = "builds"
urlpatterns = [
    path("", views.build_list, name="list"),
    path("<int:pk>/", views.build_detail, name="detail"),
    path("<int:pk>/cancel/", views.build_cancel, name="cancel"),
]
