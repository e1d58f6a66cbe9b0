from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from apps.core.fields import EncryptedTextField


class Event(models.TextChoices):
    SYNC_FAILED = "sync_failed", "sync failed"
    HEALTH_DEGRADED = "health_degraded", "health degraded"
    DEPLOYED = "deployed", "deployed (new revision Healthy)"


def all_events() -> list[str]:
    return list(Event.values)


def http_url(value: str) -> None:
    """http(s) with a host. Messages never repeat the URL: a Slack webhook URL is a secret."""
    parts = urlsplit((value or "").strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("an http(s) URL, e.g. https://hooks.slack.com/services/…",
                              code="scheme")
    if parts.username or parts.password:
        raise ValidationError("credentials do not belong in the URL", code="credentials")


class Webhook(models.Model):
    """An outgoing webhook of a project: what happens to its applications is POSTed there, as
    generic JSON or as a Slack message. The URL is stored encrypted and never shown again (a
    Slack URL is its own credential); only its host is."""

    class Kind(models.TextChoices):
        JSON = "json", "generic JSON"
        SLACK = "slack", "Slack-compatible"

    project = models.ForeignKey("applications.Project", on_delete=models.CASCADE,
                                related_name="webhooks")
    name = models.CharField(max_length=63)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.JSON)
    url = EncryptedTextField(validators=[http_url])
    host = models.CharField(max_length=255, blank=True, editable=False)
    events = models.JSONField(default=all_events, blank=True,
                              help_text=f"any of {', '.join(Event.values)}")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"],
                                               name="one_webhook_name_per_project")]

    def __str__(self):
        return f"{self.project}/{self.name}"

    def save(self, *args, **kwargs):
        self.host = urlsplit(self.url.strip()).hostname or ""
        super().save(*args, **kwargs)


class Delivery(models.Model):
    """One event sent (or being sent) to one webhook, with its attempts."""

    class State(models.TextChoices):
        PENDING = "pending"  # waiting for its first or next attempt
        DELIVERED = "delivered"
        FAILED = "failed"  # every attempt failed

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=32, choices=Event.choices)
    application = models.CharField(max_length=53)
    payload = models.JSONField(default=dict)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING,
                             db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True,
                                                   help_text="HTTP status of the last answer")
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "deliveries"

    def __str__(self):
        return f"{self.event} of {self.application} to {self.webhook}"


class DeployedRevision(models.Model):
    """The last revision of an application announced as deployed, so it is announced once."""

    application = models.OneToOneField("applications.Application", on_delete=models.CASCADE,
                                       related_name="+")
    sha = models.CharField(max_length=64)
