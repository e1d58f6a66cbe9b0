from django.conf import settings
from django.db.models import Max
from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (OpenApiParameter, OpenApiResponse, PolymorphicProxySerializer,
                                   extend_schema, extend_schema_view, inline_serializer)
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.builds import trace
from apps.builds.api.trace import ApplicationTraceSerializer
from apps.core.access import require

from .. import inspection, listcache, services, webhooks, writeback
from ..filtersets import HEALTH_STATUSES, SORTS, SYNC_STATUSES, ApplicationFilterSet
from ..models import Application, ImageUpdater, Operation, Project
from ..rules import visible
from . import webhook
from .serializers import (ApplicationSerializer, HistoryEntrySerializer, ImageUpdaterSerializer,
                          KubeEventSerializer,
                          OperationSerializer, ProjectSerializer, RefreshRequestSerializer,
                          ResourceDetailSerializer, ResourceQuerySerializer,
                          ResourceTreeSerializer, RollbackRequestSerializer, SyncRequestSerializer)

# Request and response shapes of the actions, for the OpenAPI schema (/api/schema/).
LIST_FILTERS = [OpenApiParameter("sync", enum=SYNC_STATUSES,
                                 description="sync status (any case), e.g. OutOfSync"),
                OpenApiParameter("health", enum=HEALTH_STATUSES,
                                 description="health status (any case), e.g. Degraded"),
                OpenApiParameter("project", description="project name"),
                OpenApiParameter("cluster", description="cluster name"),
                OpenApiParameter("namespace", description="destination namespace"),
                OpenApiParameter("repository", description="repository URL"),
                OpenApiParameter("search", description="part of the name, repository URL, "
                                                       "namespace or path"),
                OpenApiParameter("labels", description="a label selector as in Argo CD, e.g. "
                                 "team=web,env!=prod; also key (has it), !key, key in (a,b), "
                                 "key notin (a,b); one it cannot read is a 400 naming it"),
                OpenApiParameter("sort", description="a field, `-` first for descending: "
                                                     + ", ".join(SORTS))]
RESOURCE_QUERY = [OpenApiParameter("group", description="API group, empty for the core API"),
                  OpenApiParameter("kind", required=True),
                  OpenApiParameter("namespace", description="empty for a cluster-scoped kind"),
                  OpenApiParameter("name", required=True)]
UNKNOWN_RESOURCE = OpenApiResponse(description="no such application, or the application has "
                                               "no such resource")
DELETION_STARTED = inline_serializer("DeletionStarted", {
    "application": serializers.CharField(), "cascade": serializers.CharField(),
    "operation": OperationSerializer()})
REFRESH_QUEUED = inline_serializer("RefreshQueued", {
    "application": serializers.CharField(), "refresh": serializers.CharField()})
ROLLED_BACK_IN_GIT = inline_serializer("RolledBackInGit", {
    "commit": serializers.CharField(), "automated": serializers.BooleanField(),
    "detail": serializers.CharField()})
OPERATION_PAGE = inline_serializer("OperationPage", {
    "count": serializers.IntegerField(), "next": serializers.URLField(allow_null=True),
    "previous": serializers.URLField(allow_null=True),
    "results": OperationSerializer(many=True)})


class ApplicationPagination(PageNumberPagination):
    page_size = 50


class ProjectViewSet(viewsets.ModelViewSet):
    """Projects the user belongs to (all, for platform admins); only platform admins edit them."""

    serializer_class = ProjectSerializer
    action_permissions = {"list": None}

    def get_queryset(self):
        return visible(self.request.user, Project.objects.prefetch_related("members__user")
                       .order_by("name"), "pk")


@extend_schema_view(list=extend_schema(parameters=LIST_FILTERS))
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
        "resources": "applications.view_application",
        "resource_tree": "applications.view_application",
        "resource": "applications.view_application", "events": "applications.view_application",
        "trace": "applications.view_application",
        # Reading needs view; each write asks change_application on the app (_image_updaters).
        "image_updaters": "applications.view_application",
        "image_updater": "applications.view_application"}

    def get_queryset(self):
        apps = visible(self.request.user, services.list_applications())
        if self.action != "list":
            return apps
        # Per-resource statuses: the bulk of a row, and not in the list's fields.
        return _filtered(self.request.query_params, apps.defer("resources"))

    def list(self, request, *args, **kwargs):
        """Served from the list cache (apps/applications/listcache.py) while no application
        changed. JSON only: the browsable API's HTML names the viewer and holds their CSRF token."""
        if request.accepted_renderer.format != "json":
            return super().list(request, *args, **kwargs)

        def render():
            response = super(ApplicationViewSet, self).list(request, *args, **kwargs)
            return request.accepted_renderer.render(
                response.data, request.accepted_media_type,
                {**self.get_renderer_context(), "response": response})
        parts = ("api", listcache.viewer_of_api(request.user), request.build_absolute_uri(),
                 request.accepted_media_type)
        return HttpResponse(listcache.cached(parts, render),
                            content_type=request.accepted_renderer.media_type)

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

    @extend_schema(parameters=[
        OpenApiParameter("cascade", enum=["foreground", "background", "true", "false"]),
        OpenApiParameter("propagationPolicy", enum=["foreground", "background"])],
        responses={202: DELETION_STARTED, 204: None})
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

    @extend_schema(request=SyncRequestSerializer, responses={202: OperationSerializer})
    @action(detail=True, methods=["post"])
    def sync(self, request, name=None):
        """Queue a sync (202, the operation): optionally a revision, prune, a dry run, and only
        the resources listed (group/kind:namespace/name)."""
        options = _valid(SyncRequestSerializer, request)
        op = services.request_sync(self.get_object(), request.user, **options)
        return Response(OperationSerializer(op).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=RefreshRequestSerializer, responses={202: REFRESH_QUEUED},
                   parameters=[OpenApiParameter("hard", bool, description="as the body's hard")])
    @action(detail=True, methods=["post"])
    def refresh(self, request, name=None):
        """Compare with Git and the cluster again, soon, in a worker. Hard (?hard=true or
        {"hard": true}): render the manifests again instead of reusing those of the same commit,
        and fetch charts and Helm dependencies again, for what changed without a commit."""
        params = request.query_params
        options = _valid(RefreshRequestSerializer, request,
                         {"hard": params["hard"]} if "hard" in params else None)
        app = self.get_object()
        services.schedule_refresh(app, hard=options["hard"])
        return Response({"application": app.name, "refresh": "hard" if options["hard"] else "queued"},
                        status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=RollbackRequestSerializer, responses={202: PolymorphicProxySerializer(
        "RollbackResult", serializers=[OperationSerializer, ROLLED_BACK_IN_GIT],
        resource_type_field_name=None)},
        description="mode pin: the rollback operation; mode git: the revert commit.")
    @action(detail=True, methods=["post"])
    def rollback(self, request, name=None):
        """Bring back what a history entry deployed: mode pin (sync that commit, automated sync
        off) or git (commit a revert to the tracked branch)."""
        data = _valid(RollbackRequestSerializer, request)
        app = self.get_object()
        result = services.rollback(app, data["history_id"], request.user, mode=data["mode"])
        if isinstance(result, Operation):
            return Response(OperationSerializer(result).data, status=status.HTTP_202_ACCEPTED)
        detail = ("reverted in Git; automated sync is on and applies it after the refresh"
                  if app.automated else "reverted in Git; automated sync is off: sync to apply it")
        return Response({"commit": result, "automated": app.automated, "detail": detail},
                        status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={200: ApplicationSerializer})
    @action(detail=True, methods=["post"])
    def unpin(self, request, name=None):
        """Follow the tracked revision again after a pinned rollback; automated sync comes back
        on if the rollback turned it off."""
        app = self.get_object()
        services.unpin(app)
        return Response(self.get_serializer(app).data)

    @extend_schema(responses={200: OPERATION_PAGE})
    @action(detail=True, methods=["get"])
    def operations(self, request, name=None):
        """The application's operations, newest first, a page at a time."""
        ops = self.get_object().operations.select_related("application", "initiated_by")
        page = self.paginate_queryset(ops)
        return self.get_paginated_response(OperationSerializer(page, many=True).data)

    @extend_schema(request=ImageUpdaterSerializer,
                   responses={200: ImageUpdaterSerializer(many=True), 201: ImageUpdaterSerializer})
    @action(detail=True, methods=["get", "post"], url_path="image-updaters")
    def image_updaters(self, request, name=None):
        """The application's image update policies (GET), or a new one (POST): a tag pushed to
        `image` that the strategy accepts is written to the app's folder in Git."""
        app = self.get_object()
        if request.method == "GET":
            return Response(ImageUpdaterSerializer(app.image_updaters.all(), many=True).data)
        require(request.user, "applications.change_application", app)
        serializer = ImageUpdaterSerializer(data=request.data, context={"application": app})
        serializer.is_valid(raise_exception=True)
        updater = writeback.save_policy(ImageUpdater(application=app,
                                                     **serializer.validated_data))
        return Response(ImageUpdaterSerializer(updater).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ImageUpdaterSerializer, responses={200: ImageUpdaterSerializer,
                                                              204: None})
    @action(detail=True, methods=["get", "patch", "delete"],
            url_path=r"image-updaters/(?P<updater_id>[0-9]+)")
    def image_updater(self, request, name=None, updater_id=None):
        """One image update policy: read, change (PATCH) or delete."""
        app = self.get_object()
        updater = app.image_updaters.filter(pk=updater_id).first()
        if updater is None:
            raise NotFound("no such image update policy for this application")
        if request.method == "GET":
            return Response(ImageUpdaterSerializer(updater).data)
        require(request.user, "applications.change_application", app)
        if request.method == "DELETE":
            writeback.delete_policy(updater)
            return Response(status=status.HTTP_204_NO_CONTENT)
        serializer = ImageUpdaterSerializer(updater, data=request.data, partial=True,
                                            context={"application": app})
        serializer.is_valid(raise_exception=True)
        for key, value in serializer.validated_data.items():
            setattr(updater, key, value)
        return Response(ImageUpdaterSerializer(writeback.save_policy(updater)).data)

    @extend_schema(responses={200: HistoryEntrySerializer(many=True)})
    @action(detail=True, methods=["get"])
    def history(self, request, name=None):
        """What the application deployed, newest first; each entry can be rolled back to."""
        return Response(HistoryEntrySerializer(self.get_object().history.all(), many=True).data)

    @extend_schema(responses={200: ApplicationTraceSerializer})
    @action(detail=True, methods=["get"])
    def trace(self, request, name=None):
        """Each revision the application deployed (newest first), image by image: the build
        that pushed it (commit, tag, digest; null when not built here) and how many of the
        application's Pods run it now, since when."""
        return Response(ApplicationTraceSerializer(
            trace.application_trace(self.get_object(), request.user)).data)

    @extend_schema(responses={200: OpenApiResponse(
        OpenApiTypes.OBJECT, description="a list: each resource's group, kind, namespace, name, "
                                         "sync status, health and why it is OutOfSync")})
    @action(detail=True, methods=["get"])
    def resources(self, request, name=None):
        """The application's resources with their sync and health status, and why each one is
        OutOfSync."""
        return Response(self.get_object().resources)

    @extend_schema(responses={200: ResourceTreeSerializer})
    @action(detail=True, methods=["get"], url_path="resource-tree")
    def resource_tree(self, request, name=None):
        """The resources of the last refresh, each with the objects it owns in the cluster
        (ReplicaSets, Pods, Jobs, from ownerReferences) and their health. The cluster not
        answering leaves the owned objects out and says why in `error`."""
        app = self.get_object()
        nodes = inspection.resource_tree(app)
        return Response({"resources": nodes, "error": app.tree_error})

    @extend_schema(parameters=RESOURCE_QUERY,
                   responses={200: ResourceDetailSerializer, 404: UNKNOWN_RESOURCE})
    @action(detail=True, methods=["get"])
    def resource(self, request, name=None):
        """One resource compared now: its live manifest, its desired manifest (as the server's
        dry run of Git's would leave it) and the JSON pointers that differ, with both values."""
        app, row = self._resource_row(request)
        diff = inspection.resource_diff(app, inspection.resource_key(row))
        return Response({"resource": {**row, "key": inspection.resource_key(row), "children": []},
                         "sha": diff["sha"], "live": diff["live"], "desired": diff["desired"],
                         "differences": inspection.differing_pointers(diff),
                         "summary": diff["differences"]})

    @extend_schema(parameters=RESOURCE_QUERY,
                   responses={200: KubeEventSerializer(many=True), 404: UNKNOWN_RESOURCE})
    @action(detail=True, methods=["get"])
    def events(self, request, name=None):
        """The Kubernetes Events of one resource, newest first (empty when the cluster does
        not answer or the kind is cluster-scoped)."""
        app, row = self._resource_row(request)
        return Response(inspection.resource_events(app, row))

    def _resource_row(self, request) -> tuple[Application, dict]:
        query = _valid(ResourceQuerySerializer, request, request.query_params)
        app = self.get_object()
        key = inspection.resource_key(query)
        row = inspection.resource_row(app, key)
        if row is None:
            raise NotFound(f"{app.name} has no resource {key} (see its resource-tree)")
        return app, row


@extend_schema_view(list=extend_schema(parameters=[
    OpenApiParameter("application", description="application name")]))
class OperationViewSet(viewsets.ReadOnlyModelViewSet):
    """Operations, newest first; the list takes ?application=<name>."""

    serializer_class = OperationSerializer
    action_permissions = {"list": None, "terminate": "applications.terminate_operation"}

    def get_queryset(self):
        ops = visible(self.request.user, Operation.objects.select_related("application", "initiated_by"),
                      "application__project")
        app = self.request.query_params.get("application")
        return ops.filter(application__name=app) if app else ops

    @extend_schema(request=None, responses={202: OperationSerializer})
    @action(detail=True, methods=["post"])
    def terminate(self, request, pk=None):
        """Stop a running operation between steps; a pending one never starts."""
        op = services.terminate(self.get_object())
        return Response(self.get_serializer(op).data, status=status.HTTP_202_ACCEPTED)


@extend_schema(
    request={"application/json": OpenApiTypes.OBJECT,
             "application/x-www-form-urlencoded": OpenApiTypes.OBJECT},
    parameters=[OpenApiParameter("token", description="the webhook secret (or X-Gitlab-Token)"),
                OpenApiParameter("X-Gitlab-Token", location=OpenApiParameter.HEADER),
                OpenApiParameter("X-Gitlab-Event", location=OpenApiParameter.HEADER)],
    responses={200: OpenApiTypes.OBJECT, 202: inline_serializer("WebhookAccepted", {
        "applications": serializers.ListField(child=serializers.CharField())}),
        400: OpenApiTypes.OBJECT, 403: OpenApiTypes.OBJECT})
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
        from apps.builds import services as builds  # a tag may start builds (its tag rules)

        builds.refuse_unsigned_tag_builds(push.url, push.ref)
        sha = request.data.get("checkout_sha")  # the commit; `after` is an annotated tag's object

        def start_builds(repos):
            return builds.start_tag_builds(repos, push.ref, sha, push.delivery)
        outcome = webhooks.handle_push(push.url, push.token, ref=push.ref,
                                       default_branch=push.default_branch, delivery=push.delivery,
                                       after=push.after, then=start_builds)
        if outcome.duplicate:
            return Response({"applications": [], "duplicate": True}, status=status.HTTP_200_OK)
        # A tag's answer names the builds it started (a branch's stays as it was).
        started = {"builds": [b.pk for b in outcome.started]} \
            if push.ref.startswith(builds.TAG_PREFIX) else {}
        if outcome.already_handled:
            return Response({"applications": [], "already_handled": True, **started},
                            status=status.HTTP_202_ACCEPTED if outcome.started
                            else status.HTTP_200_OK)
        return Response({"applications": [a.name for a in outcome.applications], **started},
                        status=status.HTTP_202_ACCEPTED)


@extend_schema(responses={200: inline_serializer("WebhookSettings", {
    "url": serializers.URLField(), "secret": serializers.CharField(),
    "secret_header": serializers.CharField(), "open": serializers.BooleanField()})})
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


def _valid(serializer_class, request, data=None) -> dict:
    serializer = serializer_class(data=request.data if data is None else data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _filtered(params, apps):
    """The list's filters, those of the list page (ApplicationFilterSet); a value no
    application can have is refused, naming the parameter."""
    wrong = {field: f"must be one of {', '.join(allowed)}"
             for field, allowed in (("sync", SYNC_STATUSES), ("health", HEALTH_STATUSES))
             if params.get(field, "").strip()
             and params[field].strip().lower() not in {s.lower() for s in allowed}}
    if wrong:
        raise ValidationError(wrong)
    if "synced" in params.get("sort", ""):
        apps = apps.annotate(last_synced=Max("history__deployed_at"))
    filters = ApplicationFilterSet(params, queryset=apps)
    if not filters.is_valid():
        raise ValidationError({field: [str(e) for e in errors]
                               for field, errors in filters.errors.items()})
    # Ties (many apps share a status) broken by name, so no app hops between pages.
    return filters.qs.order_by(*(filters.qs.query.order_by or ["name"]), "name", "pk")
