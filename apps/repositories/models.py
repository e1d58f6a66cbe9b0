from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import models

from apps.core.fields import EncryptedTextField


def http_clone_url(value: str) -> None:
    """Only http(s) URLs with a host: every other git transport (file://, ssh://, ext::, a local
    path) would let whoever registers a repository reach the server's disk, keys or shell.
    Messages never repeat the URL: it may hold the very credential they refuse."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(
            "an http(s) clone URL, e.g. https://gitlab.example.com/team/deploy.git", code="scheme")
    if parts.username or parts.password:
        raise ValidationError("credentials do not belong in the URL; enter them as username "
                              "and password", code="credentials")


class Repository(models.Model):
    """A Git repository applications take manifests from (HTTPS; token or user/password)."""

    url = models.CharField(max_length=500, unique=True, validators=[http_clone_url],
                           help_text="clone URL, e.g. https://gitlab.example.com/team/deploy.git")
    username = models.CharField(max_length=200, blank=True)
    password = EncryptedTextField(blank=True, help_text="password or access token")
    webhook_secret = EncryptedTextField(
        blank=True, help_text="value GitLab sends in X-Gitlab-Token; empty: the global secret")
    connection_status = models.CharField(max_length=16, blank=True)
    connection_message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["url"]
        verbose_name_plural = "repositories"

    def __str__(self):
        return self.url
