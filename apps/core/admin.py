"""Admin pieces shared by the domain apps."""
from django import forms


class WriteOnlySecretsForm(forms.ModelForm):
    """A model form whose `secret_fields` are never shown; left empty, they keep the stored value."""

    secret_fields: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.secret_fields:
            self.initial[name] = ""

    def clean(self):
        data = super().clean()
        for name in self.secret_fields:
            if not data.get(name) and self.instance.pk:
                data[name] = getattr(self.instance, name)
        return data
