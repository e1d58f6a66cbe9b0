from django import forms
from django.contrib import admin

from .models import Repository


class RepositoryForm(forms.ModelForm):
    # Secrets are write-only: an empty field keeps the stored value.
    password = forms.CharField(widget=forms.PasswordInput, required=False,
                               help_text="password or access token; leave empty to keep")
    webhook_secret = forms.CharField(widget=forms.PasswordInput, required=False,
                                     help_text="leave empty to keep")

    class Meta:
        model = Repository
        fields = ["url", "username", "password", "webhook_secret"]

    def clean(self):
        data = super().clean()
        for secret in ("password", "webhook_secret"):
            if not data.get(secret) and self.instance.pk:
                data[secret] = getattr(self.instance, secret)
        return data


@admin.register(Repository)
class RepositoryAdmin(admin.ModelAdmin):
    form = RepositoryForm
    list_display = ["url", "username", "connection_status"]
    readonly_fields = ["connection_status", "connection_message"]
