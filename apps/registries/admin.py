from django import forms
from django.contrib import admin

from apps.core.admin import PermissionCheckedAdmin, WriteOnlySecretsForm

from . import services
from .models import Registry


class RegistryForm(WriteOnlySecretsForm):
    secret_fields = ("password", "webhook_token")
    password = forms.CharField(widget=forms.PasswordInput, required=False,
                               help_text="password, token or robot secret; leave empty to keep "
                                         "(changing the URL, the CA or turning TLS verification "
                                         "off needs it again)")
    webhook_token = forms.CharField(widget=forms.PasswordInput, required=False,
                                    help_text="the auth header Harbor's webhook sends; leave "
                                              "empty to keep")

    class Meta:
        model = Registry
        fields = ["name", "kind", "url", "username", "password", "verify_tls", "ca_data", "webhook_token"]


@admin.register(Registry)
class RegistryAdmin(PermissionCheckedAdmin):
    form = RegistryForm
    list_display = ["name", "kind", "url", "username", "connection_status"]
    readonly_fields = ["connection_status", "connection_message"]

    # Through the services, so each change lands in the audit log.
    def save_model(self, request, obj, form, change):
        services.save_registry(obj)

    def delete_model(self, request, obj):
        services.delete_registry(obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            services.delete_registry(obj)
