from urllib.parse import urlsplit

from rest_framework import serializers

from apps.core.secrets import secrets_to_resend

from .. import services
from ..models import Repository, is_ssh_url

SECRET = {"write_only": True, "required": False, "allow_blank": True,
          "style": {"input_type": "password"}, "trim_whitespace": False}


GITLAB_FIELDS = ("gitlab_url", "gitlab_project", "gitlab_token")
GITLAB_STATE = ("gitlab_status", "gitlab_message", "gitlab_project_id", "gitlab_hook_id")


class RepositorySerializer(serializers.ModelSerializer):
    """password, ssh_private_key and webhook_secret are write-only: sent to set them, never
    returned; omitted on update means unchanged. has_password / has_ssh_private_key /
    has_webhook_secret tell whether one is stored (gitlab_token and has_gitlab_token likewise).
    An SSH URL needs ssh_private_key and ssh_known_hosts (the server's host key lines, always
    checked). GitLab link: gitlab_status (Linked, Failed, empty) and gitlab_message."""

    has_password = serializers.SerializerMethodField()
    has_ssh_private_key = serializers.SerializerMethodField()
    has_webhook_secret = serializers.SerializerMethodField()
    has_gitlab_token = serializers.SerializerMethodField()

    class Meta:
        model = Repository
        fields = ["id", "url", "username", "password", "ssh_private_key", "ssh_known_hosts",
                  "webhook_secret", "has_password", "has_ssh_private_key", "has_webhook_secret",
                  "connection_status", "connection_message", *GITLAB_FIELDS, "has_gitlab_token",
                  *GITLAB_STATE, "created_at", "updated_at"]
        read_only_fields = ["connection_status", "connection_message", *GITLAB_STATE,
                            "created_at", "updated_at"]
        extra_kwargs = {"password": SECRET, "webhook_secret": SECRET, "ssh_private_key": SECRET,
                        "gitlab_token": SECRET,
                        "ssh_known_hosts": {"required": False, "allow_blank": True}}

    def get_has_gitlab_token(self, obj) -> bool:
        return bool(obj.gitlab_token)

    def get_has_password(self, obj) -> bool:
        return bool(obj.password)

    def get_has_ssh_private_key(self, obj) -> bool:
        return bool(obj.ssh_private_key)

    def get_has_webhook_secret(self, obj) -> bool:
        return bool(obj.webhook_secret)

    def validate(self, attrs):
        resend = secrets_to_resend(self.instance, attrs, provided=attrs.keys())
        if resend:
            raise serializers.ValidationError(resend)
        stored = lambda name: attrs.get(name, getattr(self.instance, name, "") or "")  # noqa: E731
        problems = services.ssh_problems(stored("url"), stored("ssh_private_key"),
                                         stored("ssh_known_hosts"), provided=attrs.keys())
        if problems:
            raise serializers.ValidationError(problems)
        return attrs

    def validate_url(self, value: str) -> str:
        # The message never repeats the URL: it may hold the very credential it refuses.
        if is_ssh_url(value):  # its parts checked (ValidationError otherwise)
            return value.strip()
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https", "oci") or not parts.hostname:
            raise serializers.ValidationError(
                "an http(s) clone URL, e.g. https://gitlab.example.com/team/deploy.git, an SSH "
                "one, e.g. git@gitlab.example.com:team/deploy.git (or, for Helm charts, "
                "oci://registry.example.com/charts)")
        if parts.username or parts.password:
            raise serializers.ValidationError(
                "credentials do not belong in the URL; send username and password")
        return value.strip()


class GitLabLinkSerializer(serializers.ModelSerializer):
    """The GitLab settings to link with, each optional (omitted keeps the stored value; a new
    gitlab_url needs gitlab_token again). gitlab_token is write-only."""

    class Meta:
        model = Repository
        fields = list(GITLAB_FIELDS)
        extra_kwargs = {"gitlab_token": SECRET, "gitlab_url": {"required": False},
                        "gitlab_project": {"required": False}}

    def validate(self, attrs):
        resend = secrets_to_resend(self.instance, attrs, provided=attrs.keys())
        if resend:
            raise serializers.ValidationError(resend)
        return attrs
