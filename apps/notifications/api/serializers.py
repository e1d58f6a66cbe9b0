from rest_framework import serializers

from apps.applications.models import Project

from ..models import Delivery, Event, Webhook


class WebhookSerializer(serializers.ModelSerializer):
    """url is write-only (a Slack URL is its own credential): sent to set it, never returned;
    `host` shows where deliveries go. events: any of sync_failed, health_degraded, deployed."""

    project = serializers.SlugRelatedField(slug_field="name", queryset=Project.objects.all())
    url = serializers.CharField(write_only=True, style={"input_type": "password"})
    events = serializers.ListField(child=serializers.ChoiceField(choices=Event.choices),
                                   required=False)
    failing = serializers.SerializerMethodField(
        help_text="deliveries whose every attempt failed, in the last 7 days")

    class Meta:
        model = Webhook
        fields = ["id", "project", "name", "kind", "url", "host", "events", "enabled",
                  "failing", "created_at"]
        read_only_fields = ["host", "created_at"]

    def get_failing(self, obj) -> int:
        from datetime import timedelta

        from django.utils import timezone

        return obj.deliveries.filter(state=Delivery.State.FAILED,
                                     created_at__gte=timezone.now() - timedelta(days=7)).count()

    def validate_events(self, value):
        return sorted(set(value), key=Event.values.index)


class DeliverySerializer(serializers.ModelSerializer):
    webhook = serializers.CharField(source="webhook.name", read_only=True)
    project = serializers.CharField(source="webhook.project.name", read_only=True)

    class Meta:
        model = Delivery
        fields = ["id", "webhook", "project", "event", "application", "payload", "state",
                  "attempts", "last_status", "last_error", "created_at", "next_attempt_at",
                  "finished_at"]
        read_only_fields = fields
