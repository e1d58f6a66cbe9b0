import django_rq
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.response import Response
from rest_framework.reverse import reverse

from apps.core import jobs


@api_view(["GET"])
def api_root(request, format=None):
    names = {"clusters": "cluster-list", "repositories": "repository-list",
             "projects": "project-list", "applications": "application-list",
             "operations": "operation-list", "webhook": "webhook-git", "heartbeat": "api-heartbeat",
             "webhook_settings": "webhook-settings", "token": "api-token"}
    return Response({key: reverse(name, request=request, format=format)
                     for key, name in names.items()})


@api_view(["POST"])
def heartbeat(request):
    """Ask a worker to report in; the answer arrives on the `system` websocket.

    Jobs are enqueued when the request's transaction commits (django-rq's on_db_commit mode), so
    a worker never sees a job before the rows it refers to.
    """
    django_rq.enqueue(jobs.heartbeat)
    return Response({"queued": "heartbeat"}, status=status.HTTP_202_ACCEPTED)
