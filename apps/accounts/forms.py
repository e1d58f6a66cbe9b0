"""The user pages' forms. The password is typed once, at creation, checked by Django's password
validators (settings.AUTH_PASSWORD_VALIDATORS) and never shown or recorded again."""
from django import forms
from django.contrib.auth.forms import UserCreationForm

from apps.applications.models import ProjectMember

from .models import User

RESERVED_USERNAMES = {"new"}  # /users/new/ is the form
PLATFORM_ADMIN_HELP = ("Everything, on every project: clusters, repositories, projects, users. "
                       "Leave unticked and give roles per project instead.")


class NewUserForm(UserCreationForm):
    """Username (unique whatever its case), names, email, platform admin and the password twice."""

    is_superuser = forms.BooleanField(label="Platform admin", required=False,
                                      help_text=PLATFORM_ADMIN_HELP)

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "first_name", "last_name", "email", "is_superuser")

    def clean_username(self):
        username = super().clean_username()
        if username and username.lower() in RESERVED_USERNAMES:
            raise forms.ValidationError(f"{username!r} names a page (/users/{username}/); "
                                        "choose another username.")
        return username


class UserDetailsForm(forms.ModelForm):
    is_superuser = forms.BooleanField(label="Platform admin", required=False,
                                      help_text=PLATFORM_ADMIN_HELP)

    class Meta:
        model = User
        fields = ("first_name", "last_name", "email", "is_superuser")


NO_ROLE = ""
# Short labels: the page explains each role once, under the table.
ROLE_CHOICES = [(NO_ROLE, "no role")] + [(role, role) for role in ProjectMember.Role.values]


class ProjectRolesForm(forms.Form):
    """One choice per project (`role-<project name>`), set to the user's role there."""

    def __init__(self, projects, current: dict[int, str], *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.projects = {}
        for project in projects:
            name = f"role-{project.name}"
            self.fields[name] = forms.ChoiceField(label=project.name, choices=ROLE_CHOICES,
                                                  required=False,
                                                  initial=current.get(project.pk, NO_ROLE))
            self.projects[name] = project

    def rows(self):
        """(project, bound field) per project, for the template."""
        return [(project, self[name]) for name, project in self.projects.items()]

    def roles(self) -> dict:
        """{Project: role or NO_ROLE} of the projects posted, once valid: a project missing
        from the post (created since the page was shown) keeps its members as they are."""
        return {self.projects[name]: role for name, role in self.cleaned_data.items()
                if name in self.data}
