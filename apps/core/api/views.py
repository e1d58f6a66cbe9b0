import django_rq
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.response import Response
from rest_framework.reverse import reverse

from apps.core import jobs

ROOT_LINKS = {"clusters": "cluster-list", "repositories": "repository-list",
              "projects": "project-list", "applications": "application-list",
              "operations": "operation-list", "audit": "audit-list", "webhook": "webhook-git",
              "webhooks": "webhook-list", "deliveries": "delivery-list", "users": "user-list",
              "heartbeat": "api-heartbeat", "webhook_settings": "webhook-settings",
              "token": "api-token", "schema": "api-schema", "docs": "api-docs"}


@extend_schema(responses={200: inline_serializer("ApiRoot", {
    key: serializers.URLField() for key in ROOT_LINKS})})
@api_view(["GET"])
def api_root(request, format=None):
    """The API's entry points, as absolute URLs."""
    return Response({key: reverse(name, request=request, format=format)
                     for key, name in ROOT_LINKS.items()})


@extend_schema(request=None, responses={202: inline_serializer("HeartbeatQueued", {
    "queued": serializers.CharField()}), 503: OpenApiTypes.OBJECT})
@api_view(["POST"])
def heartbeat(request):
    """Ask a worker to report in; the answer arrives on the `system` websocket.

    Jobs are enqueued when the request's transaction commits (django-rq's on_db_commit mode), so
    a worker never sees a job before the rows it refers to.
    """
    django_rq.enqueue(jobs.heartbeat)
    return Response({"queued": "heartbeat"}, status=status.HTTP_202_ACCEPTED)
