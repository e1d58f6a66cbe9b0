"""The project pages (apps/applications/project_views.py)."""
from django.urls import path

from . import project_views

app_name = "projects"
urlpatterns = [
    path("", project_views.project_list, name="list"),
    path("<slug:name>/", project_views.project_detail, name="detail"),
    path("<slug:name>/members/", project_views.project_members, name="members"),
    path("<slug:name>/restrictions/", project_views.project_restrictions, name="restrictions"),
]
