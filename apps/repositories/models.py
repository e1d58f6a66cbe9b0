from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import models

from apps.core.fields import EncryptedTextField
from apps.engine.errors import SourceError
from apps.engine.source.git_auth import parse_ssh_url


def http_clone_url(value: str) -> None:
    """Only http(s) URLs with a host: every other git transport (file://, ssh://, ext::, a local
    path) would let whoever registers a repository reach the server's disk, keys or shell.
    Messages never repeat the URL: it may hold the very credential they refuse.
    SSH URLs (ssh://user@host[:port]/path, user@host:path) are taken with their parts checked:
    they reach git only with the repository's own key and known_hosts."""
    if is_ssh_url(value):
        return
    parts = urlsplit(value.strip())
    # oci://host/path: a registry of Helm charts (an application's chart source), never Git.
    if parts.scheme not in ("http", "https", "oci") or not parts.hostname:
        raise ValidationError(
            "an http(s) clone URL, e.g. https://gitlab.example.com/team/deploy.git, an SSH one, "
            "e.g. ssh://git@gitlab.example.com/team/deploy.git or git@gitlab.example.com:team/"
            "deploy.git (or, for Helm charts, oci://registry.example.com/charts)", code="scheme")
    if parts.username or parts.password:
        raise ValidationError("credentials do not belong in the URL; enter them as username "
                              "and password", code="credentials")


def gitlab_base_url(value: str) -> None:
    """A GitLab instance's base URL: the clone URL checks (host, no credentials in it), then
    http(s) only, with no query or fragment: the token is sent there, never to ssh or oci."""
    try:
        http_clone_url(value)
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValidationError("not a URL, e.g. https://gitlab.example.com", code="url") from None
    if parts.scheme not in ("http", "https"):
        raise ValidationError("a GitLab base URL is http:// or https://, e.g. "
                              "https://gitlab.example.com", code="scheme")
    if parts.query or parts.fragment:
        raise ValidationError("a GitLab base URL has no query or fragment", code="query")


def is_ssh_url(value: str) -> bool:
    """Whether `value` is an SSH URL; ValidationError for one whose parts are not allowed (a host
    ssh would read as an option, say)."""
    try:
        return parse_ssh_url(value) is not None
    except SourceError as exc:
        raise ValidationError(str(exc), code="ssh") from None


class Repository(models.Model):
    """A Git repository applications take manifests from: HTTPS (token or user/password) or
    SSH (private key, with the server's known_hosts)."""

    url = models.CharField(max_length=500, unique=True, validators=[http_clone_url],
                           help_text="clone URL, e.g. https://gitlab.example.com/team/deploy.git")
    username = models.CharField(max_length=200, blank=True)
    password = EncryptedTextField(blank=True, help_text="password or access token")
    ssh_private_key = EncryptedTextField(
        blank=True, help_text="for an SSH URL: the private key (OpenSSH or PEM, no passphrase)")
    ssh_known_hosts = EncryptedTextField(
        blank=True, help_text="for an SSH URL: the server's host key lines, as `ssh-keyscan` "
                              "prints them; always checked")
    webhook_secret = EncryptedTextField(
        blank=True, help_text="value GitLab sends in X-Gitlab-Token; empty: the global secret")
    connection_status = models.CharField(max_length=16, blank=True)
    connection_message = models.TextField(blank=True)
    # GitLab link (apps/repositories/gitlab.py): the project's webhook, commit statuses.
    gitlab_url = models.CharField(
        "GitLab URL", max_length=500, blank=True, validators=[gitlab_base_url],
        help_text="the GitLab instance, e.g. https://gitlab.example.com")
    gitlab_project = models.CharField(
        "GitLab project", max_length=300, blank=True,
        help_text="path (team/deploy) or numeric id of the project")
    gitlab_token = EncryptedTextField(
        "GitLab token", blank=True, help_text="access token with the scope api")
    gitlab_project_id = models.PositiveBigIntegerField(null=True, blank=True, editable=False)
    gitlab_hook_id = models.PositiveBigIntegerField(null=True, blank=True, editable=False)
    gitlab_status = models.CharField("GitLab link", max_length=16, blank=True, editable=False,
                                     help_text="Linked, Failed, or empty when not linked")
    gitlab_message = models.TextField("GitLab link error", blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["url"]
        verbose_name_plural = "repositories"

    def __str__(self):
        return self.url
