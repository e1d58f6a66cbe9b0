from django import forms
from django.contrib import admin

from apps.applications.rules import visible
from apps.core.admin import PermissionCheckedAdmin, RecordAdmin, WriteOnlySecretsForm

from . import services
from .models import Delivery, Webhook


class WebhookForm(WriteOnlySecretsForm):
    secret_fields = ("url",)
    url = forms.CharField(widget=forms.PasswordInput, required=False,
                          help_text="a Slack URL is its own credential: never shown again; "
                                    "leave empty to keep")

    class Meta:
        model = Webhook
        fields = ["project", "name", "kind", "url", "events", "enabled"]


@admin.register(Webhook)
class WebhookAdmin(PermissionCheckedAdmin):
    form = WebhookForm
    list_display = ["name", "project", "kind", "host", "enabled"]
    readonly_fields = ["host"]

    def get_queryset(self, request):
        return visible(request.user, super().get_queryset(request))

    def save_model(self, request, obj, form, change):
        services.save_webhook(obj)

    def delete_model(self, request, obj):
        services.delete_webhook(obj)

    def delete_queryset(self, request, queryset):
        for webhook in queryset:
            services.delete_webhook(webhook)


@admin.register(Delivery)
class DeliveryAdmin(RecordAdmin):
    list_display = ["created_at", "event", "application", "webhook", "state", "attempts",
                    "last_status", "last_error"]
    list_filter = ["state", "event"]
    readonly_fields = [f.name for f in Delivery._meta.fields]

    def get_queryset(self, request):
        return visible(request.user, super().get_queryset(request), "webhook__project")
