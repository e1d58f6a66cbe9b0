from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from .. import services
from ..models import Repository
from .serializers import RepositorySerializer


class RepositoryViewSet(viewsets.ModelViewSet):
    queryset = Repository.objects.all()
    action_permissions = {"check": "repositories.check_repository"}
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
