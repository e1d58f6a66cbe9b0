from django import forms
from django.contrib import admin

from apps.core.admin import PermissionCheckedAdmin, SecretTextarea, WriteOnlySecretsForm

from . import services
from .models import Cluster


class ClusterForm(WriteOnlySecretsForm):
    secret_fields = ("token", "kubeconfig")
    token = forms.CharField(widget=forms.PasswordInput, required=False,
                            help_text="leave empty to keep")
    kubeconfig = forms.CharField(widget=SecretTextarea(attrs={"placeholder": "(unchanged)"}),
                                 required=False, help_text="leave empty to keep")

    class Meta:
        model = Cluster
        fields = ["name", "auth", "server", "token", "kubeconfig", "ca_data", "insecure"]

    def clean(self):
        data = super().clean()  # stored secrets filled in where left empty
        for field, message in services.credential_errors(
                data.get("auth"), data.get("server"), data.get("token"),
                data.get("kubeconfig")).items():
            self.add_error(field, message)
        return data


@admin.register(Cluster)
class ClusterAdmin(PermissionCheckedAdmin):
    form = ClusterForm
    list_display = ["name", "auth", "server", "connection_status", "server_version"]
    readonly_fields = ["connection_status", "connection_message", "server_version"]

    # Through the services, so each change lands in the audit log.
    def save_model(self, request, obj, form, change):
        services.save_cluster(obj)

    def delete_model(self, request, obj):
        services.delete_cluster(obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            services.delete_cluster(obj)
