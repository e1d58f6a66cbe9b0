"""The application pages (apps/applications/views.py)."""
from django.urls import path

from . import views

app_name = "applications"
urlpatterns = [
    path("", views.application_list, name="list"),
    path("new/", views.application_new, name="new"),  # before <name>/: "new" is no app's page
    path("<slug:name>/", views.application_detail, name="detail"),
    path("<slug:name>/resource/", views.resource_diff, name="resource"),
    path("<slug:name>/edit/", views.application_edit, name="edit"),
    path("<slug:name>/history/", views.application_history, name="history"),
    path("<slug:name>/sync/", views.sync, name="sync"),
    path("<slug:name>/refresh/", views.refresh, name="refresh"),
    path("<slug:name>/rollback/", views.rollback, name="rollback"),
    path("<slug:name>/unpin/", views.unpin, name="unpin"),
    path("<slug:name>/terminate/", views.terminate, name="terminate"),
    path("<slug:name>/delete/", views.delete, name="delete"),
]
