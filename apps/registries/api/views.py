from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from .. import services
from ..models import Registry
from ..oci import InvalidReference, NotFound, RegistryError
from .serializers import RegistrySerializer, TagListSerializer


class BadGateway(exceptions.APIException):
    """The registry answered with an error, refused the stored credentials, or did not answer."""
    status_code = status.HTTP_502_BAD_GATEWAY
    default_detail = "the registry failed"
    default_code = "bad_gateway"


class RegistryViewSet(viewsets.ModelViewSet):
    queryset = Registry.objects.all()
    action_permissions = {"check": "registries.check_registry", "tags": "registries.list_tags"}
    serializer_class = RegistrySerializer

    # Through the services, so each change lands in the audit log.
    def perform_create(self, serializer):
        serializer.instance = services.save_registry(Registry(**serializer.validated_data))

    def perform_update(self, serializer):
        for name, value in serializer.validated_data.items():
            setattr(serializer.instance, name, value)
        services.save_registry(serializer.instance)

    def perform_destroy(self, instance):
        services.delete_registry(instance)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def check(self, request, pk=None):
        """Ping the registry's /v2/ with the stored credentials; the outcome is kept on it."""
        registry = self.get_object()
        services.check_connection(registry)
        return Response(self.get_serializer(registry).data)

    @extend_schema(request=None, responses=TagListSerializer, parameters=[OpenApiParameter(
        "repository", str, required=True, description="repository name, e.g. team/web")])
    @action(detail=True, methods=["get"])
    def tags(self, request, pk=None):
        """Every tag of a repository in this registry, read with the stored credentials."""
        registry = self.get_object()
        repository = request.query_params.get("repository", "").strip()
        if not repository:
            raise ValidationError({"repository": "required, e.g. ?repository=team/web"})
        try:
            tags = services.list_tags(registry, repository)
        except InvalidReference as exc:
            raise ValidationError({"repository": str(exc)}) from None
        except NotFound as exc:
            raise exceptions.NotFound(str(exc)) from None
        except RegistryError as exc:
            raise BadGateway(str(exc)) from None
        return Response({"repository": repository, "tags": tags})
