from django import forms
from django.contrib import admin

from .models import Cluster


class ClusterForm(forms.ModelForm):
    # Secrets are write-only: an empty field keeps the stored value.
    token = forms.CharField(widget=forms.PasswordInput, required=False)
    kubeconfig = forms.CharField(widget=forms.Textarea(attrs={"placeholder": "(unchanged)"}),
                                 required=False)

    class Meta:
        model = Cluster
        fields = ["name", "auth", "server", "token", "kubeconfig", "ca_data", "insecure"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial["kubeconfig"] = ""
        self.initial["token"] = ""

    def clean(self):
        data = super().clean()
        for secret in ("token", "kubeconfig"):
            if not data.get(secret) and self.instance.pk:
                data[secret] = getattr(self.instance, secret)
        return data


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    form = ClusterForm
    list_display = ["name", "auth", "server", "connection_status", "server_version"]
    readonly_fields = ["connection_status", "connection_message", "server_version"]
