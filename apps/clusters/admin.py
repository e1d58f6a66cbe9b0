from django import forms
from django.contrib import admin

from apps.core.admin import WriteOnlySecretsForm

from .models import Cluster


class ClusterForm(WriteOnlySecretsForm):
    secret_fields = ("token", "kubeconfig")
    token = forms.CharField(widget=forms.PasswordInput, required=False,
                            help_text="leave empty to keep")
    kubeconfig = forms.CharField(widget=forms.Textarea(attrs={"placeholder": "(unchanged)"}),
                                 required=False, help_text="leave empty to keep")

    class Meta:
        model = Cluster
        fields = ["name", "auth", "server", "token", "kubeconfig", "ca_data", "insecure"]


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    form = ClusterForm
    list_display = ["name", "auth", "server", "connection_status", "server_version"]
    readonly_fields = ["connection_status", "connection_message", "server_version"]
