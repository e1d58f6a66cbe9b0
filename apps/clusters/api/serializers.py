from rest_framework import serializers
from rest_framework.settings import api_settings

from apps.core.secrets import secrets_to_resend

from .. import services
from ..models import Cluster

SECRET = {"write_only": True, "required": False, "allow_blank": True,
          "style": {"input_type": "password"}, "trim_whitespace": False}


class ClusterSerializer(serializers.ModelSerializer):
    """token and kubeconfig are write-only: sent to set them, never returned; omitted on update
    means unchanged. has_token / has_kubeconfig tell whether one is stored."""

    has_token = serializers.SerializerMethodField()
    has_kubeconfig = serializers.SerializerMethodField()

    class Meta:
        model = Cluster
        fields = ["id", "name", "auth", "server", "token", "kubeconfig", "ca_data", "insecure",
                  "has_token", "has_kubeconfig", "connection_status", "connection_message",
                  "server_version", "created_at", "updated_at"]
        read_only_fields = ["connection_status", "connection_message", "server_version",
                            "created_at", "updated_at"]
        extra_kwargs = {"token": SECRET, "kubeconfig": SECRET}

    def get_has_token(self, obj) -> bool:
        return bool(obj.token)

    def get_has_kubeconfig(self, obj) -> bool:
        return bool(obj.kubeconfig)

    def validate(self, attrs):
        def value(name):
            return attrs.get(name, getattr(self.instance, name, ""))

        resend = secrets_to_resend(self.instance, attrs, provided=attrs.keys())
        if resend:
            raise serializers.ValidationError(resend)
        errors = services.credential_errors(value("auth") or Cluster.Auth.TOKEN, value("server"),
                                            value("token"), value("kubeconfig"))
        if errors:
            raise serializers.ValidationError(
                {field or api_settings.NON_FIELD_ERRORS_KEY: message
                 for field, message in errors.items()})
        return attrs
