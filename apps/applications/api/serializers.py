import re

from rest_framework import serializers

from apps.clusters.models import Cluster
from apps.repositories.models import Repository

from ..models import Application, HistoryEntry, Operation, Project

RESOURCE_KEY = re.compile(r"^[^/:\s]*/[^/:\s]+:[^/:\s]*/[^/:\s]+$")


class DestinationSerializer(serializers.Serializer):
    cluster = serializers.CharField(default="*")
    namespace = serializers.CharField(default="*")


class ProjectSerializer(serializers.ModelSerializer):
    source_repos = serializers.ListField(child=serializers.CharField(), required=False)
    destinations = DestinationSerializer(many=True, required=False)

    class Meta:
        model = Project
        fields = ["id", "name", "description", "source_repos", "destinations"]


class ApplicationSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="name", queryset=Project.objects.all())
    repository = serializers.SlugRelatedField(slug_field="url", queryset=Repository.objects.all())
    cluster = serializers.SlugRelatedField(slug_field="name", queryset=Cluster.objects.all())
    sync_options = serializers.ListField(child=serializers.CharField(), required=False)
    ignore_differences = serializers.ListField(child=serializers.DictField(), required=False)
    source = serializers.DictField(required=False)

    class Meta:
        model = Application
        fields = ["id", "name", "project", "repository", "revision", "path", "tool", "source",
                  "cluster", "namespace", "automated", "prune", "self_heal", "allow_empty",
                  "sync_options", "ignore_differences", "retry_limit", "pinned_revision",
                  "sync_status", "health_status", "health_message", "target_sha", "synced_sha",
                  "conditions", "reconciled_at", "created_at"]
        read_only_fields = ["pinned_revision", "sync_status", "health_status", "health_message",
                            "target_sha", "synced_sha", "conditions", "reconciled_at", "created_at"]


class OperationSerializer(serializers.ModelSerializer):
    application = serializers.SlugRelatedField(slug_field="name", read_only=True)
    initiator = serializers.CharField(read_only=True)
    duration = serializers.FloatField(read_only=True)

    class Meta:
        model = Operation
        fields = ["id", "application", "kind", "phase", "message", "revision", "sha", "options",
                  "automated", "initiator", "terminate_requested", "resources", "created_at",
                  "started_at", "finished_at", "duration"]
        read_only_fields = fields


class HistoryEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = HistoryEntry
        fields = ["id", "sha", "revision", "source", "operation", "deployed_at", "deployed_by"]
        read_only_fields = fields


class SyncRequestSerializer(serializers.Serializer):
    revision = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    prune = serializers.BooleanField(required=False, allow_null=True, default=None)
    dry_run = serializers.BooleanField(required=False, default=False)
    resources = serializers.ListField(child=serializers.CharField(), required=False, default=list)

    def validate_resources(self, value):
        wrong = [key for key in value if not RESOURCE_KEY.match(key)]
        if wrong:
            raise serializers.ValidationError(
                f"not of the form group/kind:namespace/name (group and namespace may be empty, "
                f"e.g. apps/Deployment:shop/web or /Namespace:/shop): {', '.join(wrong[:5])}")
        return value


class RollbackRequestSerializer(serializers.Serializer):
    history_id = serializers.PrimaryKeyRelatedField(queryset=HistoryEntry.objects.all())
    mode = serializers.ChoiceField(choices=["pin", "git"], default="pin")
