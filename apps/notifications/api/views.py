from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.applications.rules import visible

from .. import services
from ..models import Delivery, Webhook, http_url
from .serializers import DeliverySerializer, WebhookSerializer


class WebhookViewSet(viewsets.ModelViewSet):
    """Outgoing webhooks of the projects the user belongs to (all, for platform admins)."""

    serializer_class = WebhookSerializer
    action_permissions = {"list": None}

    def get_queryset(self):
        return visible(self.request.user, Webhook.objects.select_related("project"))

    def perform_create(self, serializer):
        _check_url(serializer.validated_data["url"])
        serializer.instance = services.save_webhook(Webhook(**serializer.validated_data))

    def perform_update(self, serializer):
        if "url" in serializer.validated_data:
            _check_url(serializer.validated_data["url"])
        for name, value in serializer.validated_data.items():
            setattr(serializer.instance, name, value)
        services.save_webhook(serializer.instance)

    def perform_destroy(self, instance):
        services.delete_webhook(instance)


@extend_schema_view(list=extend_schema(parameters=[
    OpenApiParameter("webhook", int, description="webhook id"),
    OpenApiParameter("project", description="project name"),
    OpenApiParameter("state", enum=Delivery.State.values),
    OpenApiParameter("application", description="application name")]))
class DeliveryViewSet(viewsets.ReadOnlyModelViewSet):
    """Notifications sent or being sent, newest first, with their attempts and last error."""

    serializer_class = DeliverySerializer
    action_permissions = {"list": None, "retry": "notifications.retry_delivery"}

    def get_queryset(self):
        deliveries = visible(self.request.user,
                             Delivery.objects.select_related("webhook__project"),
                             "webhook__project")
        params = self.request.query_params if self.action == "list" else {}
        for param, lookup in (("webhook", "webhook_id"), ("project", "webhook__project__name"),
                              ("state", "state"), ("application", "application")):
            if params.get(param):
                deliveries = deliveries.filter(**{lookup: params[param]})
        return deliveries

    @extend_schema(request=None, responses={202: DeliverySerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Send a failed delivery again, now (a pending one is left alone)."""
        delivery = services.retry(self.get_object())
        return Response(self.get_serializer(delivery).data, status=status.HTTP_202_ACCEPTED)


def _check_url(url: str) -> None:
    try:
        http_url(url)
    except DjangoValidationError as exc:
        raise serializers.ValidationError({"url": exc.messages}) from None
