from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import models

from apps.clusters.models import dns_label
from apps.core.fields import EncryptedTextField

from .oci import ca_context


def registry_url(value: str) -> None:
    """http(s) and a host only; the messages never repeat the URL (it may hold a credential)."""
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValidationError("not a URL, e.g. https://harbor.example.com", code="url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("an http:// or https:// URL with a host, e.g. "
                              "https://harbor.example.com", code="scheme")
    if parts.username or parts.password:
        raise ValidationError("credentials do not belong in the URL; enter them as username "
                              "and password", code="credentials")
    if parts.query or parts.fragment:
        raise ValidationError("a registry URL has no query or fragment", code="query")


def pem_certificates(value: str) -> None:
    """A CA the TLS layer can load (PEM certificates), checked here rather than at first use."""
    if value.strip():
        try:
            ca_context(value)
        except ValueError as exc:
            raise ValidationError(f"CA: {exc}", code="ca") from None


class Registry(models.Model):
    """A container registry images are pushed to and read from: Harbor, or any OCI registry."""

    class Kind(models.TextChoices):
        OCI = "oci", "OCI registry"
        HARBOR = "harbor", "Harbor"

    name = models.CharField(max_length=63, unique=True, validators=[dns_label])
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.OCI)
    url = models.CharField(max_length=500, validators=[registry_url],
                           help_text="e.g. https://harbor.example.com")
    username = models.CharField(max_length=200, blank=True)
    password = EncryptedTextField(blank=True, help_text="password, token or robot secret")
    verify_tls = models.BooleanField(default=True, help_text="check the server's certificate")
    ca_data = models.TextField(blank=True, validators=[pem_certificates],
                               help_text="PEM of the CA to trust instead of the system's")
    webhook_token = EncryptedTextField(blank=True, help_text=(
        "what Harbor's webhook sends in its Authorization header (the policy's auth header); "
        "empty: webhooks from this registry are refused"))
    connection_status = models.CharField(max_length=16, blank=True)
    connection_message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "registries"

    def __str__(self):
        return self.name

    @property
    def host(self) -> str:
        """host[:port], as image references name the registry."""
        return urlsplit(self.url).netloc
