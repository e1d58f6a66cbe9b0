from django import forms
from django.contrib import admin, messages

from apps.core.admin import PermissionCheckedAdmin, SecretTextarea, WriteOnlySecretsForm

from . import services
from .models import Repository


class RepositoryForm(WriteOnlySecretsForm):
    secret_fields = ("password", "ssh_private_key", "webhook_secret", "gitlab_token")
    password = forms.CharField(widget=forms.PasswordInput, required=False,
                               help_text="password or access token; leave empty to keep")
    ssh_private_key = forms.CharField(
        widget=SecretTextarea(attrs={"rows": 4}), required=False, label="SSH private key",
        help_text="for an SSH URL (OpenSSH or PEM, no passphrase); never shown again, "
                  "leave empty to keep")
    ssh_known_hosts = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, label="SSH known_hosts",
        help_text="for an SSH URL: the server's host key lines (`ssh-keyscan -p PORT HOST`); "
                  "the server's key is always checked against them")
    webhook_secret = forms.CharField(widget=forms.PasswordInput, required=False,
                                     help_text="leave empty to keep")
    gitlab_token = forms.CharField(
        widget=forms.PasswordInput, required=False, label="GitLab token",
        help_text="access token with the scope api, to link the GitLab project (action "
                  "\"Link to GitLab\"); never shown again, leave empty to keep")

    class Meta:
        model = Repository
        fields = ["url", "username", "password", "ssh_private_key", "ssh_known_hosts",
                  "webhook_secret", "gitlab_url", "gitlab_project", "gitlab_token"]

    def clean(self):
        data = super().clean()
        if "url" in data:  # else the URL's own error says what is wrong
            provided = {name for name in ("ssh_private_key", "ssh_known_hosts")
                        if self.data.get(name, "").strip()}
            problems = services.ssh_problems(data["url"], data.get("ssh_private_key") or "",
                                             data.get("ssh_known_hosts") or "", provided)
            for name, message in problems.items():
                self.add_error(name, message)
        return data


@admin.register(Repository)
class RepositoryAdmin(PermissionCheckedAdmin):
    form = RepositoryForm
    list_display = ["url", "username", "connection_status", "gitlab_status"]
    readonly_fields = ["connection_status", "connection_message", "gitlab_status",
                       "gitlab_message"]
    actions = ["link_gitlab", "unlink_gitlab"]

    @admin.action(description="Link to GitLab (create or update the project webhook)")
    def link_gitlab(self, request, queryset):
        for repo in self.allowed(request, "repositories.change_repository", queryset):
            if services.link_gitlab(repo):
                self.message_user(request, f"{repo.url}: linked to GitLab")
            else:
                self.message_user(request, f"{repo.url}: {repo.gitlab_message}", messages.ERROR)

    @admin.action(description="Unlink from GitLab (delete the project webhook)")
    def unlink_gitlab(self, request, queryset):
        for repo in self.allowed(request, "repositories.change_repository", queryset):
            if services.unlink_gitlab(repo):
                self.message_user(request, f"{repo.url}: unlinked from GitLab")
            else:
                self.message_user(request, f"{repo.url}: {repo.gitlab_message}", messages.ERROR)

    # Through the services, so each change lands in the audit log.
    def save_model(self, request, obj, form, change):
        services.save_repository(obj)

    def delete_model(self, request, obj):
        services.delete_repository(obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            services.delete_repository(obj)
