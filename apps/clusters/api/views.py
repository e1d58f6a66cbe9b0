from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from .. import services
from ..models import Cluster
from .serializers import ClusterSerializer


class ClusterViewSet(viewsets.ModelViewSet):
    queryset = Cluster.objects.all()
    action_permissions = {"check": "clusters.check_cluster"}
    serializer_class = ClusterSerializer

    @action(detail=True, methods=["post"])
    def check(self, request, pk=None):
        """Connect with the stored credentials; the outcome is kept on the cluster."""
        cluster = self.get_object()
        services.check_connection(cluster)
        return Response(self.get_serializer(cluster).data)
