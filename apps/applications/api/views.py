from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import services
from ..models import Operation, Project
from . import webhook
from .serializers import (ApplicationSerializer, HistoryEntrySerializer, OperationSerializer,
                          ProjectSerializer, RollbackRequestSerializer, SyncRequestSerializer)

FILTERS = ("sync", "health", "project", "search")


class ApplicationPagination(PageNumberPagination):
    page_size = 50


class ProjectViewSet(viewsets.ModelViewSet):
    queryset = Project.objects.all()
    serializer_class = ProjectSerializer


class ApplicationViewSet(viewsets.ModelViewSet):
    """Applications by name; the list takes ?sync= &health= &project= &search=."""

    serializer_class = ApplicationSerializer
    pagination_class = ApplicationPagination
    lookup_field = "name"
    lookup_value_regex = "[a-z0-9-]+"

    def get_queryset(self):
        params = self.request.query_params if self.action == "list" else {}
        return services.list_applications(**{k: params.get(k, "").strip() for k in FILTERS})

    def perform_create(self, serializer):
        serializer.instance = services.create_application(**serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = services.update_application(serializer.instance,
                                                          **serializer.validated_data)

    def perform_destroy(self, instance):
        services.delete_application(instance)

    @action(detail=True, methods=["post"])
    def sync(self, request, name=None):
        options = _valid(SyncRequestSerializer, request)
        op = services.request_sync(self.get_object(), request.user, **options)
        return Response(OperationSerializer(op).data, status=status.HTTP_202_ACCEPTED)

    @action(detail=True, methods=["post"])
    def refresh(self, request, name=None):
        app = self.get_object()
        services.schedule_refresh(app)
        return Response({"application": app.name, "refresh": "queued"},
                        status=status.HTTP_202_ACCEPTED)

    @action(detail=True, methods=["post"])
    def rollback(self, request, name=None):
        data = _valid(RollbackRequestSerializer, request)
        result = services.rollback(self.get_object(), data["history_id"], request.user,
                                   mode=data["mode"])
        if isinstance(result, Operation):
            return Response(OperationSerializer(result).data, status=status.HTTP_202_ACCEPTED)
        return Response({"commit": result, "detail": "reverted in Git; a refresh follows"},
                        status=status.HTTP_202_ACCEPTED)

    @action(detail=True, methods=["post"])
    def unpin(self, request, name=None):
        app = self.get_object()
        services.unpin(app)
        return Response(self.get_serializer(app).data)

    @action(detail=True, methods=["get"])
    def operations(self, request, name=None):
        ops = self.get_object().operations.select_related("application", "initiated_by")
        page = self.paginate_queryset(ops)
        return self.get_paginated_response(OperationSerializer(page, many=True).data)

    @action(detail=True, methods=["get"])
    def history(self, request, name=None):
        return Response(HistoryEntrySerializer(self.get_object().history.all(), many=True).data)

    @action(detail=True, methods=["get"])
    def resources(self, request, name=None):
        return Response(self.get_object().resources)


class OperationViewSet(viewsets.ReadOnlyModelViewSet):
    """Operations, newest first; the list takes ?application=<name>."""

    serializer_class = OperationSerializer

    def get_queryset(self):
        ops = Operation.objects.select_related("application", "initiated_by")
        app = self.request.query_params.get("application")
        return ops.filter(application__name=app) if app else ops

    @action(detail=True, methods=["post"])
    def terminate(self, request, pk=None):
        op = services.terminate(self.get_object())
        return Response(self.get_serializer(op).data, status=status.HTTP_202_ACCEPTED)


class GitWebhookView(APIView):
    """A push to a repository (GitLab push/tag push hooks, or the generic form): refresh every
    application that uses it. No login; the token is checked against the repository's secret."""

    authentication_classes = []
    permission_classes = [AllowAny]

    def post(self, request):
        push = webhook.parse(request)
        if push.ignored:
            return Response({"applications": [], "detail": push.ignored},
                            status=status.HTTP_202_ACCEPTED)
        apps = services.handle_push(push.url, push.token)
        return Response({"applications": [a.name for a in apps]}, status=status.HTTP_202_ACCEPTED)


def _valid(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
