"""The tag rule form of the repository page. The checks are the model's (TagRule.clean, which is
tagrules.check_rule: pattern glob or regex, image template placeholders, paths inside the
repository, build args), so the form, the admin and the API refuse the same values.

A new TagRule field appears on the page by adding its name to `Meta.fields`: the template
renders whatever the form holds."""
from __future__ import annotations

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS

from apps.applications.models import Project
from apps.clusters.models import Cluster
from apps.registries.models import Registry

from .models import DEFAULT_PATTERNS, TagRule

MONO = {"class": "mono", "spellcheck": "false", "autocomplete": "off"}


class TagRuleForm(forms.ModelForm):
    class Meta:
        model = TagRule
        fields = ["action", "pattern", "project", "registry", "image_template", "image_name",
                  "dockerfile", "context", "build_args", "platform", "backend", "build_cluster",
                  "build_namespace", "executor_image", "build_node_selector", "build_tolerations",
                  "enabled"]
        labels = {"image_template": "Image template", "image_name": "Image name",
                  "backend": "Builder", "build_cluster": "Build cluster (kaniko)",
                  "build_namespace": "Build namespace (kaniko)",
                  "executor_image": "Executor image (kaniko)",
                  "build_node_selector": "Build pod node selector (kaniko, JSON object)",
                  "build_tolerations": "Build pod tolerations (kaniko, JSON list)",
                  "dockerfile": "Dockerfile", "context": "Context folder",
                  "build_args": "Build args (JSON object)", "platform": "Target platform"}
        widgets = {
            "pattern": forms.TextInput(attrs={
                **MONO, "placeholder": f"{DEFAULT_PATTERNS['build']} (or "
                                       f"{DEFAULT_PATTERNS['push']} for push)"}),
            "image_template": forms.TextInput(attrs=MONO),
            "image_name": forms.TextInput(attrs=MONO),
            "dockerfile": forms.TextInput(attrs=MONO),
            "context": forms.TextInput(attrs=MONO),
            "build_args": forms.Textarea(attrs={**MONO, "rows": 3,
                                                "placeholder": '{"VERSION": "1"}'}),
            "platform": forms.TextInput(attrs={**MONO, "placeholder": "linux/amd64"}),
            "build_namespace": forms.TextInput(attrs={**MONO, "placeholder": "builds"}),
            "executor_image": forms.TextInput(attrs=MONO),
            "build_node_selector": forms.Textarea(attrs={**MONO, "rows": 2,
                                                         "placeholder": '{"pool": "builds"}'}),
            "build_tolerations": forms.Textarea(attrs={
                **MONO, "rows": 2,
                "placeholder": '[{"key": "builds", "operator": "Exists", "effect": "NoSchedule"}]'}),
        }

    def __init__(self, *args, user, repository, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.repository = repository
        self.fields["project"].queryset = editable_projects(user, self.instance)
        self.fields["project"].empty_label = "choose…"
        self.fields["registry"].queryset = Registry.objects.order_by("name")
        self.fields["registry"].empty_label = "choose…"
        # Which of them the rule's project may build in is TagRule.clean's check (its
        # destinations), which names the refusal on the field.
        self.fields["build_cluster"].queryset = Cluster.objects.order_by("name")
        self.fields["build_cluster"].empty_label = "none (buildah builds on the worker)"

    def clean_build_args(self):
        return self.cleaned_data.get("build_args") or {}  # an empty box: none

    def clean_build_node_selector(self):
        return self.cleaned_data.get("build_node_selector") or {}

    def clean_build_tolerations(self):
        return self.cleaned_data.get("build_tolerations") or []

    def add_error(self, field, error):
        """The model's checks may name a field this form does not show (one added to TagRule
        later): its message goes to the top of the form, with the field's name, instead of
        Django's ValueError."""
        if field is None and hasattr(error, "error_dict"):
            for name in list(error.error_dict):
                if name != NON_FIELD_ERRORS and name not in self.fields:
                    messages = error.error_dict.pop(name)
                    super().add_error(None, [f"{name}: {m}" for e in messages for m in e])
            if not error.error_dict:
                return
        super().add_error(field, error)


def editable_projects(user, rule: TagRule):
    """The projects `user` may put a tag rule in (a project admin's own; all for platform
    admins), and the rule's current one, so an edit that keeps it is not refused by the
    choice list before the permission check says why."""
    allowed = [p.pk for p in Project.objects.order_by("name")
               if user.has_perm("builds.add_tagrule", TagRule(project=p))]
    if rule.project_id:
        allowed.append(rule.project_id)
    return Project.objects.filter(pk__in=allowed).order_by("name")
