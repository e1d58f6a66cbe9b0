from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from apps.core.access import require
from apps.core.api.exceptions import BadRequest, Conflict

from .. import services, trace
from ..filtersets import filtered
from ..models import Build, TagRule
from ..rules import visible
from .serializers import BuildLogSerializer, BuildSerializer, TagRuleSerializer
from .trace import BuildTraceSerializer


class BuildViewSet(viewsets.ReadOnlyModelViewSet):
    """Builds, newest first; the list takes ?status= &action= &project= &repository= &tag=
    &sha= &rule=."""

    serializer_class = BuildSerializer
    action_permissions = {"list": None, "cancel": "builds.cancel_build",
                          "log": "builds.view_build", "trace": "builds.view_build"}

    def get_queryset(self):
        builds = visible(self.request.user,
                         Build.objects.select_related("repository", "project", "rule")
                         .defer("log"))
        if self.action != "list":
            return builds
        filters, builds = filtered(self.request.query_params, builds)
        if filters.errors:
            raise ValidationError({k: [str(e) for e in v] for k, v in filters.errors.items()})
        return builds

    @extend_schema(request=None, responses={202: BuildSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel a queued or running build (409 once it has finished)."""
        try:
            build = services.cancel(self.get_object(), request.user)
        except services.NotCancelable as exc:
            raise Conflict(str(exc)) from None
        return Response(self.get_serializer(build).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=BuildLogSerializer, parameters=[OpenApiParameter(
        "offset", int, description="characters already read; only what follows is returned")])
    @action(detail=True, methods=["get"])
    def log(self, request, pk=None):
        """The build's log (no credential is ever in it), from ?offset= on."""
        build = self.get_object()
        text = Build.objects.values_list("log", flat=True).get(pk=build.pk)
        try:
            offset = max(0, int(request.query_params.get("offset", "0")))
        except ValueError:
            raise ValidationError({"offset": "a number of characters"}) from None
        return Response({"status": build.status, "offset": len(text), "log": text[offset:]})

    @extend_schema(responses=BuildTraceSerializer)
    @action(detail=True, methods=["get"])
    def trace(self, request, pk=None):
        """Where the build's image went: the applications you can see whose revisions deployed
        it (by digest, or by the tag it was pushed to), and how many of their Pods run it now,
        since when."""
        return Response(BuildTraceSerializer(trace.build_trace(self.get_object(),
                                                               request.user)).data)


class TagRuleViewSet(viewsets.ModelViewSet):
    """Tag rules: which tags of a repository build or push an image; ?repository=<id>."""

    serializer_class = TagRuleSerializer
    action_permissions = {"start": "builds.start_build"}

    def get_queryset(self):
        rules = visible(self.request.user, TagRule.objects.select_related("registry", "project"))
        repository = self.request.query_params.get("repository", "")
        return rules.filter(repository_id=repository) if repository.isdigit() else rules

    def perform_create(self, serializer):
        # The project comes with the request: the role is checked in that project.
        rule = TagRule(**serializer.validated_data)
        require(self.request.user, "builds.add_tagrule", rule)
        serializer.instance = services.save_tag_rule(rule)

    def perform_update(self, serializer):
        # Moved to another project: the role is needed there too.
        project = serializer.validated_data.get("project")
        if project is not None:
            require(self.request.user, "builds.change_tagrule", TagRule(project=project))
        for name, value in serializer.validated_data.items():
            setattr(serializer.instance, name, value)
        services.save_tag_rule(serializer.instance)

    def perform_destroy(self, instance):
        services.delete_tag_rule(instance)

    @extend_schema(request=None, responses={201: BuildSerializer}, parameters=[
        OpenApiParameter("tag", str, required=True), OpenApiParameter("sha", str, required=True)])
    @action(detail=True, methods=["post"], url_path="start")
    def start(self, request, pk=None):
        """Start this rule's build of a commit by hand (?tag=&sha=, the full 40-hex sha)."""
        rule = self.get_object()
        tag, sha = request.query_params.get("tag", ""), request.query_params.get("sha", "").lower()
        if len(sha) != 40 or any(c not in "0123456789abcdef" for c in sha):
            raise ValidationError({"sha": "the commit's full 40-character sha"})
        try:
            build = services.start_build(rule, tag, sha, user=request.user)
        except services.BuildError as exc:
            raise BadRequest(str(exc)) from None
        return Response(BuildSerializer(build).data, status=status.HTTP_201_CREATED)
