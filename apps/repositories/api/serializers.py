from urllib.parse import urlsplit

from rest_framework import serializers

from apps.core.secrets import secrets_to_resend

from ..models import Repository

SECRET = {"write_only": True, "required": False, "allow_blank": True,
          "style": {"input_type": "password"}, "trim_whitespace": False}


class RepositorySerializer(serializers.ModelSerializer):
    """password and webhook_secret are write-only: sent to set them, never returned; omitted on
    update means unchanged. has_password / has_webhook_secret tell whether one is stored."""

    has_password = serializers.SerializerMethodField()
    has_webhook_secret = serializers.SerializerMethodField()

    class Meta:
        model = Repository
        fields = ["id", "url", "username", "password", "webhook_secret", "has_password",
                  "has_webhook_secret", "connection_status", "connection_message",
                  "created_at", "updated_at"]
        read_only_fields = ["connection_status", "connection_message", "created_at", "updated_at"]
        extra_kwargs = {"password": SECRET, "webhook_secret": SECRET}

    def get_has_password(self, obj) -> bool:
        return bool(obj.password)

    def get_has_webhook_secret(self, obj) -> bool:
        return bool(obj.webhook_secret)

    def validate(self, attrs):
        resend = secrets_to_resend(self.instance, attrs, provided=attrs.keys())
        if resend:
            raise serializers.ValidationError(resend)
        return attrs

    def validate_url(self, value: str) -> str:
        # The message never repeats the URL: it may hold the very credential it refuses.
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise serializers.ValidationError("an http(s) clone URL, e.g. https://gitlab.example.com/team/deploy.git")
        if parts.username or parts.password:
            raise serializers.ValidationError(
                "credentials do not belong in the URL; send username and password")
        return value.strip()
