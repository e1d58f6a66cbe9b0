"""Admin pieces shared by the domain apps."""
from django import forms
from django.contrib import messages
from rules.contrib.admin import ObjectPermissionsModelAdmin

from apps.core.access import Forbidden, require
from apps.core.secrets import secrets_to_resend


class SecretTextarea(forms.Textarea):
    """A textarea for a secret (a kubeconfig): what was entered is never sent back in a page,
    not even with the form's errors (as PasswordInput does for one-line secrets)."""

    def format_value(self, value):
        return None


class WriteOnlySecretsForm(forms.ModelForm):
    """A model form whose `secret_fields` are never shown; left empty, they keep the stored value."""

    secret_fields: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.secret_fields:
            self.initial[name] = ""

    def clean(self):
        data = super().clean()
        if self.instance.pk:
            # Keeping a stored secret is refused where the edit changes where it is sent.
            provided = {name for name in self.secret_fields if data.get(name)}
            for name, message in secrets_to_resend(self.instance, data, provided).items():
                self.add_error(name, message)
            for name in self.secret_fields:
                if not data.get(name):
                    data[name] = getattr(self.instance, name)
        return data


class PermissionCheckedAdmin(ObjectPermissionsModelAdmin):
    """A ModelAdmin whose view/add/change/delete and actions ask the one permission check
    (apps/core/access.py) with the object, so the admin allows exactly what the API allows."""

    def has_add_permission(self, request):
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.add_{opts.model_name}")

    def has_module_permission(self, request):
        return request.user.has_module_perms(self.opts.app_label)

    def allowed(self, request, perm: str, objects):
        """The objects `request.user` has `perm` on; a message names each refused one."""
        permitted = []
        for obj in objects:
            try:
                require(request.user, perm, obj)
            except Forbidden as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                permitted.append(obj)
        return permitted


class RecordAdmin(PermissionCheckedAdmin):
    """A record written by the system (operations, history, audit entries, deliveries): listed
    and read, never added, edited or deleted by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
