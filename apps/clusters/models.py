from django.core.validators import RegexValidator, URLValidator
from django.db import models

from apps.core.fields import EncryptedTextField

dns_label = RegexValidator(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
                           "lower-case letters, digits and '-', starting and ending with a letter or digit")


class Cluster(models.Model):
    """A Kubernetes cluster applications deploy to."""

    class Auth(models.TextChoices):
        TOKEN = "token", "API URL and bearer token"
        KUBECONFIG = "kubeconfig", "kubeconfig"
        IN_CLUSTER = "in-cluster", "the cluster GitOps UI runs in (service account)"

    name = models.CharField(max_length=63, unique=True, validators=[dns_label])
    auth = models.CharField(max_length=16, choices=Auth.choices, default=Auth.TOKEN)
    server = models.CharField(max_length=500, blank=True, validators=[URLValidator(["https", "http"])],
                              help_text="API server URL, e.g. https://10.0.0.1:6443")
    token = EncryptedTextField(blank=True)
    kubeconfig = EncryptedTextField(blank=True)
    ca_data = models.TextField(blank=True, help_text="PEM of the API server's CA")
    insecure = models.BooleanField(default=False, help_text="skip TLS verification (testing only)")
    # Last connection check, shown next to the cluster.
    connection_status = models.CharField(max_length=16, blank=True)
    connection_message = models.TextField(blank=True)
    server_version = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name
