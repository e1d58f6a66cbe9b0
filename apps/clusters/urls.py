"""The clusters page (apps/clusters/views.py)."""
from django.urls import path

from . import views

app_name = "clusters"
urlpatterns = [path("", views.cluster_list, name="list")]
