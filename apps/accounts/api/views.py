"""API tokens (django-rest-knox: stored as hashes, shown once, expiring), and users for
automation (platform admins only). Each change goes to the audit log through
apps/accounts/services.py."""
from axes.handlers.proxy import AxesProxyHandler
from django.contrib.auth import update_session_auth_hash
from django.db.models import Prefetch
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (OpenApiParameter, extend_schema, extend_schema_view,
                                   inline_serializer)
from knox import views as knox_views
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.authentication import BasicAuthentication, SessionAuthentication
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.applications.models import ProjectMember
from apps.core.access import refusal, require
from apps.core.api.exceptions import BadRequest

from .. import services
from ..authentication import TokenAuthentication
from ..filtersets import UserFilterSet
from ..lockout import LockedOut, lockout_message
from ..models import User
from .serializers import ProjectRoleSerializer, UserSerializer


class LockoutAwareBasicAuthentication(BasicAuthentication):
    """HTTP Basic, counted by django-axes like the login form: after too many failures of one
    username from one address it answers 429 with the reason (instead of a plain 401), even for
    the right password, until the lockout ends."""

    def authenticate_credentials(self, userid, password, request=None):
        try:
            return super().authenticate_credentials(userid, password, request)
        except exceptions.AuthenticationFailed:
            if request is not None and (getattr(request, "axes_locked_out", False) or
                                        AxesProxyHandler.is_locked(request, {"username": userid})):
                raise LockedOut(lockout_message(userid)) from None
            raise


NEW_TOKEN = inline_serializer("NewToken", {"token": serializers.CharField(),
                                          "expiry": serializers.DateTimeField(allow_null=True)})


@extend_schema(request=None, responses={200: NEW_TOKEN, 401: OpenApiTypes.OBJECT,
                                        429: OpenApiTypes.OBJECT})
class TokenCreateView(knox_views.LoginView):
    """POST with your username and password (HTTP Basic) or from a signed-in browser session:
    a new API token, shown once in the answer ({"token": ..., "expiry": ...}). Send it as
    `Authorization: Token <token>`. Too many wrong passwords for one username from one address
    lock it out for a while (429)."""

    authentication_classes = [LockoutAwareBasicAuthentication, SessionAuthentication]

    def create_token(self):
        return services.create_api_token(self.request.user)


@extend_schema(request=None, responses={204: None})
class TokenRevokeView(knox_views.LogoutView):
    """POST with a token: that token stops working."""

    authentication_classes = [TokenAuthentication]

    def post(self, request, format=None):
        services.revoke_api_token(request._auth)
        return self.get_post_response(request)


@extend_schema(request=None, responses={204: None})
class TokenRevokeAllView(knox_views.LogoutAllView):
    """POST with a token: every token of its user stops working."""

    authentication_classes = [TokenAuthentication]

    def post(self, request, format=None):
        services.revoke_all_api_tokens(request.user)
        return self.get_post_response(request)


@extend_schema_view(list=extend_schema(description=(
    "Users, by username, with their status and role per project. Filters: `search` (part "
    "of the username), `is_active`, `is_platform_admin`, `project` (a project's name).")))
class UserViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                  mixins.UpdateModelMixin, viewsets.GenericViewSet):
    """Users, for platform admins (the rules of the user pages, apps/accounts/rules.py). No
    delete: a user is deactivated, keeping their roles, tokens and audit entries. Each change
    goes through the account services, which record it in the audit log."""

    serializer_class = UserSerializer
    lookup_field = "username"
    lookup_value_regex = r"[\w.@+-]+"  # what Django's username validator allows
    filter_backends = [DjangoFilterBackend]
    filterset_class = UserFilterSet
    action_permissions = {"deactivate": "accounts.change_user",
                          "reactivate": "accounts.change_user",
                          "roles": "accounts.view_user", "set_role": "accounts.change_user",
                          "remove_role": "accounts.change_user"}

    def get_queryset(self):
        return User.objects.order_by("username").prefetch_related(Prefetch(
            "project_roles", queryset=ProjectMember.objects.select_related("project")
            .order_by("project__name")))

    def check_permissions(self, request):
        super().check_permissions(request)
        # Which usernames exist is for admins only: refused before any lookup, so a missing
        # user and a present one answer alike.
        if not request.user.has_perm("accounts.view_user"):
            self.permission_denied(request, message=refusal(request.user, "accounts.view_user"))

    def perform_update(self, serializer):
        serializer.save()
        changed_own = serializer.instance.pk == self.request.user.pk
        if changed_own and serializer.validated_data.get("password"):
            update_session_auth_hash(self.request, serializer.instance)  # this session stays

    def _set_active(self, active: bool):
        user = self.get_object()
        try:
            services.set_active(user, active, acting=self.request.user)
        except services.AccountError as exc:
            raise BadRequest(str(exc)) from None
        return Response(self.get_serializer(user).data)

    @extend_schema(request=None, responses={200: UserSerializer, 400: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"])
    def deactivate(self, request, username=None):
        """The user can no longer sign in or use API tokens, and open sessions end; roles,
        tokens and audit entries stay for a reactivation. Refused (400) for yourself and for
        the last active platform admin."""
        return self._set_active(False)

    @extend_schema(request=None, responses={200: UserSerializer})
    @action(detail=True, methods=["post"])
    def reactivate(self, request, username=None):
        """The user may sign in again; their roles and unexpired tokens work again."""
        return self._set_active(True)

    def _roles(self, user):
        return Response(ProjectRoleSerializer(
            user.project_roles.select_related("project").order_by("project__name"),
            many=True).data)

    @extend_schema(responses={200: ProjectRoleSerializer(many=True)})
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def roles(self, request, username=None):
        """The user's role in each project where they have one, by project name."""
        return self._roles(self.get_object())

    @extend_schema(request=ProjectRoleSerializer,
                   responses={200: ProjectRoleSerializer(many=True), 400: OpenApiTypes.OBJECT})
    @roles.mapping.post
    def set_role(self, request, username=None):
        """Give the user a role in a project, replacing the one they had there; answers the
        user's roles. Also needs the right to change that project."""
        user = self.get_object()
        body = ProjectRoleSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        project = body.validated_data["project"]
        require(request.user, "applications.change_project", project)
        services.set_project_roles(user, {project: body.validated_data["role"]})
        return self._roles(user)

    @extend_schema(parameters=[OpenApiParameter("project", str, OpenApiParameter.PATH,
                                                description="the project's name")],
                   request=None, responses={204: None, 404: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["delete"], url_path=r"roles/(?P<project>[^/.]+)",
            filter_backends=[], pagination_class=None)
    def remove_role(self, request, username=None, project=None):
        """Take the user's role in the project away (404 when they have none there). Also
        needs the right to change that project."""
        user = self.get_object()
        member = (ProjectMember.objects.select_related("project")
                  .filter(user=user, project__name=project).first())
        if member is None:
            raise exceptions.NotFound(f"{user.username} has no role in a project named "
                                      f"{project!r}")
        require(request.user, "applications.change_project", member.project)
        services.set_project_roles(user, {member.project: ""})
        return Response(status=status.HTTP_204_NO_CONTENT)
