from rest_framework import serializers

from apps.core.secrets import secrets_to_resend

from ..models import Registry

SECRET = {"write_only": True, "required": False, "allow_blank": True,
          "style": {"input_type": "password"}, "trim_whitespace": False}


class RegistrySerializer(serializers.ModelSerializer):
    """password is write-only: sent to set it, never returned; omitted on update means
    unchanged, except where the edit changes where it is sent (URL, CA, TLS verification off):
    then it must be sent again. has_password tells whether one is stored."""

    has_password = serializers.SerializerMethodField()
    has_webhook_token = serializers.SerializerMethodField()

    class Meta:
        model = Registry
        fields = ["id", "name", "kind", "url", "username", "password", "has_password",
                  "verify_tls", "ca_data", "webhook_token", "has_webhook_token", "connection_status", "connection_message",
                  "created_at", "updated_at"]
        read_only_fields = ["connection_status", "connection_message", "created_at", "updated_at"]
        extra_kwargs = {"password": SECRET, "webhook_token": SECRET}

    def get_has_password(self, obj) -> bool:
        return bool(obj.password)

    def get_has_webhook_token(self, obj) -> bool:
        return bool(obj.webhook_token)

    def validate_url(self, value: str) -> str:
        return value.strip().rstrip("/")

    def validate(self, attrs):
        resend = secrets_to_resend(self.instance, attrs, provided=attrs.keys())
        if resend:
            raise serializers.ValidationError(resend)
        return attrs


class TagListSerializer(serializers.Serializer):
    repository = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
