from rest_framework import serializers

from ..kaniko import check_backend
from ..models import Build, TagRule
from ..tagrules import RuleInvalid, check_rule


class BuildSerializer(serializers.ModelSerializer):
    repository = serializers.CharField(source="repository.url", read_only=True)
    project = serializers.CharField(source="project.name", read_only=True)
    rule = serializers.SerializerMethodField()
    duration = serializers.FloatField(read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = Build
        fields = ["id", "url", "status", "message", "action", "repository", "project", "rule",
                  "tag", "sha", "trigger", "image", "digest", "size", "reused_from",
                  "cancel_requested", "created_at", "started_at", "finished_at", "duration"]
        read_only_fields = fields

    def get_rule(self, obj) -> str | None:
        return str(obj.rule) if obj.rule_id else None

    def get_url(self, obj) -> str:
        return f"/builds/{obj.pk}/"


class BuildLogSerializer(serializers.Serializer):
    status = serializers.CharField()
    offset = serializers.IntegerField(help_text="pass as ?offset= to get only what follows")
    log = serializers.CharField()


class TagRuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = TagRule
        fields = ["id", "repository", "project", "action", "pattern", "registry",
                  "image_template", "image_name", "dockerfile", "context", "build_args",
                  "platform", "backend", "build_cluster", "build_namespace", "executor_image",
                  "build_node_selector", "build_tolerations",
                  "enabled", "created_at"]
        read_only_fields = ["created_at"]

    def validate(self, attrs):
        rule = TagRule(**{f.attname: getattr(self.instance, f.attname)
                          for f in TagRule._meta.concrete_fields}) if self.instance else TagRule()
        for name, value in attrs.items():
            setattr(rule, name, value)
        try:
            check_rule(rule)
            check_backend(rule)
        except RuleInvalid as exc:
            raise serializers.ValidationError({exc.field: str(exc)}) from None
        return attrs
