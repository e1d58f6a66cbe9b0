from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from .. import services
from ..models import Repository
from .serializers import GitLabLinkSerializer, RepositorySerializer


class RepositoryViewSet(viewsets.ModelViewSet):
    queryset = Repository.objects.all()
    action_permissions = {"check": "repositories.check_repository",
                          "gitlab_link": "repositories.change_repository",
                          "gitlab_unlink": "repositories.change_repository"}
    serializer_class = RepositorySerializer

    # Through the services, so each change lands in the audit log.
    def perform_create(self, serializer):
        serializer.instance = services.save_repository(Repository(**serializer.validated_data))

    def perform_update(self, serializer):
        for name, value in serializer.validated_data.items():
            setattr(serializer.instance, name, value)
        services.save_repository(serializer.instance)

    def perform_destroy(self, instance):
        services.delete_repository(instance)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def check(self, request, pk=None):
        """List the repository's refs with the stored credentials; the outcome is kept on it."""
        repo = self.get_object()
        services.check_connection(repo)
        return Response(self.get_serializer(repo).data)

    @extend_schema(request=GitLabLinkSerializer, responses={
        200: RepositorySerializer,
        502: OpenApiResponse(RepositorySerializer, description="GitLab refused or cannot be "
                             "reached: gitlab_status is Failed, gitlab_message says why")})
    @action(detail=True, methods=["post"], url_path="gitlab-link")
    def gitlab_link(self, request, pk=None):
        """Link the repository to its GitLab project (settings in the body are saved first):
        checks the token's scope api, creates or updates the project webhook to us."""
        repo = self.get_object()
        settings = GitLabLinkSerializer(repo, data=request.data, partial=True)
        settings.is_valid(raise_exception=True)
        if settings.validated_data:
            for name, value in settings.validated_data.items():
                setattr(repo, name, value)
            services.save_repository(repo)
        linked = services.link_gitlab(repo)
        return Response(self.get_serializer(repo).data, status=200 if linked else 502)

    @extend_schema(request=None, responses={
        200: RepositorySerializer,
        502: OpenApiResponse(RepositorySerializer, description="GitLab refused to delete the "
                             "webhook: gitlab_message says why")})
    @action(detail=True, methods=["post"], url_path="gitlab-unlink")
    def gitlab_unlink(self, request, pk=None):
        """Delete our webhook from the GitLab project and forget the link."""
        repo = self.get_object()
        unlinked = services.unlink_gitlab(repo)
        return Response(self.get_serializer(repo).data, status=200 if unlinked else 502)
