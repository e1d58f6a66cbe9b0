"""Users for automation. A password is write-only: checked by Django's password validators
(settings.AUTH_PASSWORD_VALIDATORS), set through services, never returned nor audited."""
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from rest_framework import serializers

from apps.applications.models import Project, ProjectMember

from .. import services
from ..forms import PLATFORM_ADMIN_HELP, RESERVED_USERNAMES
from ..models import User

WRITE_ONLY_SECRET = {"write_only": True, "required": False, "trim_whitespace": False,
                     "style": {"input_type": "password"}}


class ProjectRoleSerializer(serializers.Serializer):
    """{"project": "default", "role": "operator"}: the user's role in one project."""

    project = serializers.SlugRelatedField(slug_field="name", queryset=Project.objects.all())
    role = serializers.ChoiceField(choices=ProjectMember.Role.values)


class UserSerializer(serializers.ModelSerializer):
    """A user, without anything secret: `password` is sent to set one (required on create,
    optional on update: the password changes only when sent), never returned. Changing your own
    password also needs `current_password`. `username` is fixed once created. `roles` is read
    here and set through /api/users/{username}/roles/."""

    password = serializers.CharField(
        **WRITE_ONLY_SECRET, help_text="the new password; checked by the password rules")
    current_password = serializers.CharField(
        **WRITE_ONLY_SECRET, help_text="your own current password; needed only to change it")
    is_platform_admin = serializers.BooleanField(source="is_superuser", required=False,
                                                 help_text=PLATFORM_ADMIN_HELP)
    roles = ProjectRoleSerializer(source="project_roles", many=True, read_only=True)

    class Meta:
        model = User
        fields = ["id", "username", "first_name", "last_name", "email", "is_active",
                  "is_platform_admin", "last_login", "date_joined", "roles", "password",
                  "current_password"]
        read_only_fields = ["id", "last_login", "date_joined"]

    def validate_username(self, value):
        if self.instance is not None:
            if value != self.instance.username:
                raise serializers.ValidationError("a username cannot be changed; create a new "
                                                  "user and deactivate this one")
            return value
        if value.lower() in RESERVED_USERNAMES:
            raise serializers.ValidationError(f"{value!r} names a page (/users/{value}/); "
                                              "choose another username")
        if User.objects.filter(username__iexact=value).exists():
            raise serializers.ValidationError("a user with that username already exists "
                                              "(in any case)")
        return value

    def validate(self, attrs):
        password = attrs.get("password")
        if self.instance is None and not password:
            raise serializers.ValidationError({"password": ["a new user needs a password"]})
        if password:
            self._check_password(password, attrs)
        return attrs

    def _check_password(self, password, attrs):
        acting = self.context["request"].user
        if self.instance is not None and self.instance.pk == acting.pk:
            current = attrs.get("current_password") or ""
            if not acting.check_password(current):
                raise serializers.ValidationError({"current_password": [
                    "your current password is needed to change your own, and this is not it"]})
        candidate = self.instance or User(**{name: value for name, value in attrs.items()
                                             if name not in ("password", "current_password")})
        try:
            password_validation.validate_password(password, candidate)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"password": list(exc.messages)}) from None

    def create(self, validated_data):
        password = validated_data.pop("password")
        validated_data.pop("current_password", None)
        return services.create_user(User(**validated_data), password)

    def update(self, user, validated_data):
        """Details first, then the password, then (de)activation, all or nothing: a refusal
        (the last platform admin, yourself) leaves the user as it was."""
        acting = self.context["request"].user
        password = validated_data.pop("password", None)
        validated_data.pop("current_password", None)
        validated_data.pop("username", None)
        active = validated_data.pop("is_active", None)
        field = "is_platform_admin"
        try:
            with transaction.atomic():
                for name, value in validated_data.items():
                    setattr(user, name, value)
                services.update_user(user, acting=acting)
                if password:
                    services.set_password(user, password)
                if active is not None:
                    field = "is_active"
                    services.set_active(user, active, acting=acting)
        except services.AccountError as exc:
            user.refresh_from_db()
            raise serializers.ValidationError({field: [str(exc)]}) from None
        return user
