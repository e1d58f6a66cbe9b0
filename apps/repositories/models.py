from django.db import models

from apps.core.fields import EncryptedTextField


class Repository(models.Model):
    """A Git repository applications take manifests from (HTTPS; token or user/password)."""

    url = models.CharField(max_length=500, unique=True,
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
