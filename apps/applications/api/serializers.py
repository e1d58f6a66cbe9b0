import re

from django.contrib.auth import get_user_model
from rest_framework import serializers

from apps.clusters.models import Cluster
from apps.repositories.models import Repository

from .. import labels, services, spec
from ..models import Application, HistoryEntry, ImageUpdater, Operation, Project, ProjectMember

RESOURCE_KEY = re.compile(r"^[^/:\s]*/[^/:\s]+:[^/:\s]*/[^/:\s]+$")


class DestinationSerializer(serializers.Serializer):
    cluster = serializers.CharField(default="*")
    namespace = serializers.CharField(default="*")


class MemberSerializer(serializers.Serializer):
    user = serializers.SlugRelatedField(slug_field="username",
                                        queryset=get_user_model().objects.all())
    role = serializers.ChoiceField(choices=ProjectMember.Role.values)


class ProjectSerializer(serializers.ModelSerializer):
    """members: [{"user": "alice", "role": "operator"}]; sent, it replaces the project's roles."""

    source_repos = serializers.ListField(child=serializers.CharField(), required=False)
    destinations = DestinationSerializer(many=True, required=False)
    members = MemberSerializer(many=True, required=False)

    class Meta:
        model = Project
        fields = ["id", "name", "description", "source_repos", "destinations", "members"]

    def validate_members(self, value):
        users = [m["user"].pk for m in value]
        if len(users) != len(set(users)):
            raise serializers.ValidationError("a user appears twice; give each user one role")
        return value

    def create(self, validated_data):
        members = validated_data.pop("members", None)
        return services.save_project(Project(**validated_data), members)

    def update(self, instance, validated_data):
        members = validated_data.pop("members", None)
        for name, value in validated_data.items():
            setattr(instance, name, value)
        return services.save_project(instance, members)


class ApplicationSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="name", queryset=Project.objects.all())
    repository = serializers.SlugRelatedField(slug_field="url", queryset=Repository.objects.all())
    cluster = serializers.SlugRelatedField(slug_field="name", queryset=Cluster.objects.all())
    sync_options = serializers.ListField(child=serializers.CharField(), required=False)
    ignore_differences = serializers.ListField(child=serializers.DictField(), required=False)
    source = serializers.DictField(required=False)
    tool = serializers.CharField(required=False, allow_blank=True)  # spec.clean_tool says which
    labels = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False), required=False,
        help_text='{"team": "web"}: Kubernetes label keys (optional DNS prefix and /) and values '
                  '(≤ 63 characters)')

    class Meta:
        model = Application
        fields = ["id", "name", "project", "labels", "repository", "revision", "path", "chart",
                  "tool", "source", "cluster", "namespace", "automated", "prune", "self_heal",
                  "allow_empty", "sync_options", "ignore_differences", "retry_limit",
                  "pinned_revision",
                  "sync_status", "health_status", "health_message", "target_sha", "synced_sha",
                  "conditions", "reconciled_at", "created_at", "deletion"]
        read_only_fields = ["pinned_revision", "sync_status", "health_status", "health_message",
                            "target_sha", "synced_sha", "conditions", "reconciled_at", "created_at",
                            "deletion"]

    # What the engine accepts (apps/applications/spec.py), checked and normalised per field.
    def validate_path(self, value):
        return _spec_field("path", value)

    def validate_tool(self, value):
        return _spec_field("tool", value)

    def validate_chart(self, value):
        return _spec_field("chart", value)

    def validate(self, attrs):
        """A chart source needs a version or range as revision and an oci:// repository a
        chart, whichever of the fields this request changes."""
        def current(name, default=""):
            return attrs.get(name, getattr(self.instance, name, default))
        repository = current("repository", None)
        try:
            spec.check_chart_source(current("chart"), current("revision", "HEAD"),
                                    repository.url if repository else "", current("tool"))
        except spec.InvalidSpec as exc:
            raise serializers.ValidationError({exc.top_field: exc.message}) from None
        return attrs

    def validate_sync_options(self, value):
        return _spec_field("sync_options", value)

    def validate_labels(self, value):
        try:
            return labels.clean(value)
        except labels.InvalidLabel as exc:
            raise serializers.ValidationError(str(exc)) from None

    def validate_ignore_differences(self, value):
        return _spec_field("ignore_differences", value)

    def validate_source(self, value):
        return _spec_field("source", value)


def _spec_field(name: str, value):
    try:
        return spec.CLEANERS[name](value)
    except spec.InvalidSpec as exc:
        # Under the field's own key; a nested place (source.helm.parameters[0]) is kept in front.
        raise serializers.ValidationError(
            str(exc) if exc.field != name else exc.message) from None


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
        fields = ["id", "sha", "revision", "source", "operation", "deployed_at", "deployed_by",
                  "images"]
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


# --- inspecting resources (resource-tree, resource, events) ------------------------------------
NAME_PART = re.compile(r"^[^/:\s]+$")


class ResourceQuerySerializer(serializers.Serializer):
    """Which resource of the application: ?group=&kind=&namespace=&name= (group empty for the
    core API, namespace empty for a cluster-scoped kind), as in the app's resources list."""

    group = serializers.CharField(required=False, allow_blank=True, default="")
    kind = serializers.CharField()
    namespace = serializers.CharField(required=False, allow_blank=True, default="")
    name = serializers.CharField()

    def validate(self, data):
        wrong = [f for f, v in data.items() if v and not NAME_PART.match(v)]
        if wrong:
            raise serializers.ValidationError(
                {f: "must not hold '/', ':' or spaces" for f in wrong})
        return data


class OwnedObjectSerializer(serializers.Serializer):
    kind = serializers.CharField()
    name = serializers.CharField()
    health = serializers.CharField()
    health_message = serializers.CharField()
    children = serializers.ListField(child=serializers.DictField(), help_text="owned objects, "
                                     "the same shape (a ReplicaSet's Pods)")


class ResourceNodeSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="group/kind:namespace/name")
    group = serializers.CharField()
    kind = serializers.CharField()
    namespace = serializers.CharField()
    name = serializers.CharField()
    status = serializers.CharField(help_text="sync status: Synced, OutOfSync")
    health = serializers.CharField()
    health_message = serializers.CharField()
    requires_pruning = serializers.BooleanField()
    differences = serializers.ListField(child=serializers.CharField())
    error = serializers.CharField()
    children = OwnedObjectSerializer(many=True, help_text="owned objects (ownerReferences)")


class ResourceTreeSerializer(serializers.Serializer):
    resources = ResourceNodeSerializer(many=True)
    error = serializers.CharField(help_text="why owned objects are left out; empty when shown")


class DifferenceSerializer(serializers.Serializer):
    pointer = serializers.CharField(help_text="JSON pointer of a field that differs")
    live = serializers.JSONField(required=False, help_text="absent: the live object lacks it")
    desired = serializers.JSONField(required=False, help_text="absent: Git lacks it")


class ResourceDetailSerializer(serializers.Serializer):
    resource = ResourceNodeSerializer()
    sha = serializers.CharField(help_text="the commit (chart: version) the desired state is from")
    live = serializers.JSONField(allow_null=True, help_text="null: not in the cluster")
    desired = serializers.JSONField(allow_null=True, help_text="null: not in Git (to prune)")
    differences = DifferenceSerializer(many=True)
    summary = serializers.ListField(child=serializers.CharField(), help_text=
                                    "the differing pointers, or (missing) / (not in Git)")


class KubeEventSerializer(serializers.Serializer):
    type = serializers.CharField()
    reason = serializers.CharField()
    message = serializers.CharField()
    count = serializers.IntegerField()
    last_seen = serializers.CharField()


class RefreshRequestSerializer(serializers.Serializer):
    hard = serializers.BooleanField(required=False, default=False, help_text=
                                    "render again, ignoring rendered manifests and fetched charts")


class ImageUpdaterSerializer(serializers.ModelSerializer):
    """An image update policy of the application (writeback.py); last_* tell how the last
    write-back that concerned it ended."""

    class Meta:
        model = ImageUpdater
        fields = ["id", "image", "strategy", "constraint", "target", "helm_values_file",
                  "helm_tag_key", "helm_repository_key", "helm_digest_key", "pin_digest",
                  "branch", "commit_author", "commit_message", "enabled", "last_status",
                  "last_message", "last_tag", "last_commit", "last_run_at"]
        read_only_fields = ["last_status", "last_message", "last_tag", "last_commit",
                            "last_run_at"]
        validators = []  # (application, image) is unique: checked in validate with the app

    def validate(self, attrs):
        from ..writeback import policy_problems

        app = self.context["application"]
        editable = [f for f in self.Meta.fields if f not in self.Meta.read_only_fields + ["id"]]
        values = {f: getattr(self.instance, f) for f in editable} if self.instance else {}
        candidate = ImageUpdater(application=app, **{**values, **attrs})
        problems = policy_problems(candidate)
        others = ImageUpdater.objects.filter(application=app, image=candidate.image)
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        if others.exists():
            problems["image"] = "the application has a policy for this image already"
        if problems:
            raise serializers.ValidationError(problems)
        return attrs
