from django import forms
from django.contrib import admin

from apps.core.admin import PermissionCheckedAdmin, WriteOnlySecretsForm

from .models import Repository


class RepositoryForm(WriteOnlySecretsForm):
    secret_fields = ("password", "webhook_secret")
    password = forms.CharField(widget=forms.PasswordInput, required=False,
                               help_text="password or access token; leave empty to keep")
    webhook_secret = forms.CharField(widget=forms.PasswordInput, required=False,
                                     help_text="leave empty to keep")

    class Meta:
        model = Repository
        fields = ["url", "username", "password", "webhook_secret"]


@admin.register(Repository)
class RepositoryAdmin(PermissionCheckedAdmin):
    form = RepositoryForm
    list_display = ["url", "username", "connection_status"]
    readonly_fields = ["connection_status", "connection_message"]
