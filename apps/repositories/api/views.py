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

    @action(detail=True, methods=["post"])
    def check(self, request, pk=None):
        """List the repository's refs with the stored credentials; the outcome is kept on it."""
        repo = self.get_object()
        services.check_connection(repo)
        return Response(self.get_serializer(repo).data)
