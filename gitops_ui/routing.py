"""Websocket routes; each domain app adds its consumers here."""
from django.urls import path

from apps.applications.consumers import ApplicationEventsConsumer, ApplicationListEventsConsumer
from apps.builds.consumers import BuildEventsConsumer
from apps.core.consumers import SystemEventsConsumer

websocket_urlpatterns = [
    path("ws/system/", SystemEventsConsumer.as_asgi()),
    path("ws/applications/", ApplicationListEventsConsumer.as_asgi()),
    path("ws/applications/<str:name>/", ApplicationEventsConsumer.as_asgi()),
    path("ws/builds/<int:pk>/", BuildEventsConsumer.as_asgi()),
]
