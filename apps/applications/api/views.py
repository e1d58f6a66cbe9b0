from django.conf import settings
from django.urls import reverse
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.access import require

from .. import services, webhooks
from ..models import Application, Operation, Project
from ..rules import visible
from . import webhook
from .serializers import (ApplicationSerializer, HistoryEntrySerializer, OperationSerializer,
                          ProjectSerializer, RollbackRequestSerializer, SyncRequestSerializer)

FILTERS = ("sync", "health", "project", "search")


class ApplicationPagination(PageNumberPagination):
    page_size = 50


class ProjectViewSet(viewsets.ModelViewSet):
    """Projects the user belongs to (all, for platform admins); only platform admins edit them."""

    serializer_class = ProjectSerializer
    action_permissions = {"list": None}

    def get_queryset(self):
        return visible(self.request.user, Project.objects.prefetch_related("members__user")
                       .order_by("name"), "pk")


class ApplicationViewSet(viewsets.ModelViewSet):
    """Applications by name; the list takes ?sync= &health= &project= &search=."""

    serializer_class = ApplicationSerializer
    pagination_class = ApplicationPagination
    lookup_field = "name"
    lookup_value_regex = "[a-z0-9-]+"
    action_permissions = {
        "list": None,  # signed in is enough: the queryset holds only what the user may see
        "sync": "applications.sync_application", "refresh": "applications.refresh_application",
        "rollback": "applications.rollback_application",
        "unpin": "applications.rollback_application",
        "operations": "applications.view_application", "history": "applications.view_application",
        "resources": "applications.view_application"}

    def get_queryset(self):
        params = self.request.query_params if self.action == "list" else {}
        apps = services.list_applications(**{k: params.get(k, "").strip() for k in FILTERS})
        return visible(self.request.user, apps)

    def perform_create(self, serializer):
        # The project comes with the request: the role is checked in that project.
        require(self.request.user, "applications.add_application",
                Application(project=serializer.validated_data["project"]))
        serializer.instance = services.create_application(**serializer.validated_data)

    def perform_update(self, serializer):
        project = serializer.validated_data.get("project")
        if project is not None and project.pk != serializer.instance.project_id:
            require(self.request.user, "applications.add_application", Application(project=project))
        serializer.instance = services.update_application(serializer.instance,
                                                          **serializer.validated_data)

    def destroy(self, request, name=None):
        """?cascade=foreground (default) | background | false, or Argo CD's cascade=true|false
        with propagationPolicy=foreground|background. Cascading: 202 with the delete operation;
        the app goes once its resources are gone. Otherwise (or nothing deployed) 204."""
        app = self.get_object()
        params = request.query_params
        cascade = services.deletion_policy(params.get("cascade"), params.get("propagationPolicy"))
        op = services.delete_application(app, request.user, cascade=cascade)
        if op is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response({"application": app.name, "cascade": cascade,
                         "operation": OperationSerializer(op).data},
                        status=status.HTTP_202_ACCEPTED)

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
        app = self.get_object()
        result = services.rollback(app, data["history_id"], request.user, mode=data["mode"])
        if isinstance(result, Operation):
            return Response(OperationSerializer(result).data, status=status.HTTP_202_ACCEPTED)
        detail = ("reverted in Git; automated sync is on and applies it after the refresh"
                  if app.automated else "reverted in Git; automated sync is off: sync to apply it")
        return Response({"commit": result, "automated": app.automated, "detail": detail},
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
    action_permissions = {"list": None, "terminate": "applications.terminate_operation"}

    def get_queryset(self):
        ops = visible(self.request.user, Operation.objects.select_related("application", "initiated_by"),
                      "application__project")
        app = self.request.query_params.get("application")
        return ops.filter(application__name=app) if app else ops

    @action(detail=True, methods=["post"])
    def terminate(self, request, pk=None):
        op = services.terminate(self.get_object())
        return Response(self.get_serializer(op).data, status=status.HTTP_202_ACCEPTED)


class GitWebhookView(APIView):
    """A push to a repository (GitLab push/tag push hooks, or the generic form): refresh the
    applications that track the pushed ref. No login; the token is checked against the
    repository's secret or the global one. A repeated delivery answers 200 {"duplicate": true};
    a push of a commit already refreshed, 200 {"already_handled": true} (webhooks.handle_push)."""

    authentication_classes = []
    permission_classes = [AllowAny]

    def post(self, request):
        push = webhook.parse(request)
        if push.ignored:
            return Response({"applications": [], "detail": push.ignored},
                            status=status.HTTP_202_ACCEPTED)
        outcome = webhooks.handle_push(push.url, push.token, ref=push.ref,
                                       default_branch=push.default_branch, delivery=push.delivery,
                                       after=push.after)
        if outcome.duplicate:
            return Response({"applications": [], "duplicate": True}, status=status.HTTP_200_OK)
        if outcome.already_handled:
            return Response({"applications": [], "already_handled": True},
                            status=status.HTTP_200_OK)
        return Response({"applications": [a.name for a in outcome.applications]},
                        status=status.HTTP_202_ACCEPTED)


class WebhookSettingsView(APIView):
    """What to enter in GitLab's webhook form: the URL and the global secret (platform admins
    only, like the generated admin password), and whether unsigned webhooks are accepted."""

    required_permission = "core.view_webhook_settings"

    def get(self, request):
        response = Response({
            "url": request.build_absolute_uri(reverse("webhook-git")),
            "secret": settings.GITOPS_UI_WEBHOOK_SECRET,
            "secret_header": "X-Gitlab-Token",
            "open": settings.GITOPS_UI_WEBHOOK_OPEN})
        response["Cache-Control"] = "no-store"  # a secret: no copy in a browser or proxy cache
        return response


def _valid(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
