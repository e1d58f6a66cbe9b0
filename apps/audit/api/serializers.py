from rest_framework import serializers

from ..models import AuditEntry


class AuditEntrySerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_name", read_only=True,
                                  help_text="username, or what acted without one (webhook, "
                                            "auto-sync, system, anonymous)")
    project = serializers.CharField(source="project_name", read_only=True)

    class Meta:
        model = AuditEntry
        fields = ["id", "at", "actor", "action", "object_type", "object_id", "object_name",
                  "project", "details", "source_ip", "user_agent"]
        read_only_fields = fields
