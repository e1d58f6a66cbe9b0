from drf_spectacular.utils import extend_schema
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

    # Through the services, so each change lands in the audit log.
    def perform_create(self, serializer):
        serializer.instance = services.save_cluster(Cluster(**serializer.validated_data))

    def perform_update(self, serializer):
        for name, value in serializer.validated_data.items():
            setattr(serializer.instance, name, value)
        services.save_cluster(serializer.instance)

    def perform_destroy(self, instance):
        services.delete_cluster(instance)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def check(self, request, pk=None):
        """Connect with the stored credentials; the outcome is kept on the cluster."""
        cluster = self.get_object()
        services.check_connection(cluster)
        return Response(self.get_serializer(cluster).data)
