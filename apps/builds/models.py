"""Tag rules (which git tags build or push an image, and how) and the builds they start."""
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from apps.applications.models import Project
from apps.clusters.models import Cluster, dns_label
from apps.registries.models import Registry
from apps.repositories.models import Repository

DEFAULT_PATTERNS = {"build": "build-*", "push": "push-*"}
DEFAULT_IMAGE_TEMPLATE = "{registry}/{project}/{name}:{version}"
# kaniko upstream (GoogleContainerTools) was archived in June 2025; this fork is maintained.
DEFAULT_EXECUTOR_IMAGE = "ghcr.io/osscontainertools/kaniko:v1.28.3"


class TagRule(models.Model):
    """A tag of `repository` matching `pattern` builds the tagged commit's image (`build`), or
    pushes it to `registry`, building it first if it never was (`push`)."""

    class Action(models.TextChoices):
        BUILD = "build", "build the image"
        PUSH = "push", "build if needed, then push to the registry"

    class Backend(models.TextChoices):
        BUILDAH = "buildah", "buildah on the build worker"
        KANIKO = "kaniko", "kaniko as a Job in a cluster"

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="tag_rules")
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="tag_rules",
                                help_text="whose members see and act on the builds")
    action = models.CharField(max_length=8, choices=Action.choices, default=Action.BUILD)
    pattern = models.CharField(
        max_length=200, blank=True,
        help_text="glob (build-*) or regular expression after re: (re:^v(?P<version>.+)$); "
                  "empty: build-* for build, push-* for push")
    registry = models.ForeignKey(Registry, on_delete=models.PROTECT, related_name="tag_rules")
    image_template = models.CharField(
        max_length=300, default=DEFAULT_IMAGE_TEMPLATE,
        help_text="{registry} host, {project} project name, {name} image name, {version} the "
                  "tag minus the pattern's literal prefix (or the short SHA), {sha} short SHA")
    image_name = models.CharField(max_length=100, blank=True,
                                  help_text="{name}; empty: the repository's last path segment")
    dockerfile = models.CharField(max_length=300, default="Dockerfile",
                                  help_text="relative to the repository's root")
    context = models.CharField(max_length=300, default=".",
                               help_text="build context folder, relative to the repository's root")
    build_args = models.JSONField(default=dict, blank=True,
                                  help_text='{"NAME": "value"}; never a secret')
    platform = models.CharField(max_length=64, blank=True, help_text="e.g. linux/amd64")
    backend = models.CharField(max_length=16, choices=Backend.choices, default=Backend.BUILDAH)
    build_cluster = models.ForeignKey(
        Cluster, on_delete=models.PROTECT, null=True, blank=True, related_name="tag_rules",
        help_text="kaniko: the cluster the build Job runs in (one the project may deploy to)")
    build_namespace = models.CharField(max_length=63, blank=True, validators=[dns_label],
                                       help_text="kaniko: the namespace of the build Job")
    executor_image = models.CharField(max_length=300, default=DEFAULT_EXECUTOR_IMAGE,
                                      help_text="kaniko: the executor image the Job runs")
    # Where the build pods may run: e.g. build nodes kept apart by a taint, or with fast disks.
    build_node_selector = models.JSONField(
        default=dict, blank=True,
        help_text='kaniko: the build pod\'s nodeSelector, {"label": "value"}')
    build_tolerations = models.JSONField(
        default=list, blank=True,
        help_text='kaniko: the build pod\'s tolerations, [{"key": ..., "operator": "Equal", '
                  '"value": ..., "effect": "NoSchedule"}]')
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["repository_id", "pk"]

    def __str__(self):
        return f"{self.effective_pattern} → {self.action}"

    @property
    def effective_pattern(self) -> str:
        return self.pattern or DEFAULT_PATTERNS[self.action]

    def clean(self):
        from .kaniko import check_backend
        from .tagrules import RuleInvalid, check_rule

        try:
            check_rule(self)
            check_backend(self)
        except RuleInvalid as exc:
            raise ValidationError({exc.field: str(exc)}) from None


class Build(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELED = "canceled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELED)

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="builds")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="builds")
    rule = models.ForeignKey(TagRule, on_delete=models.SET_NULL, null=True, blank=True,
                             related_name="builds")
    action = models.CharField(max_length=8, choices=TagRule.Action.choices)
    sha = models.CharField(max_length=40)
    tag = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED,
                              db_index=True)
    message = models.TextField(blank=True, help_text="why it failed or was canceled")
    triggered_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                     null=True, blank=True, related_name="+")
    trigger = models.CharField(max_length=150, help_text='"webhook", or the user\'s name')
    delivery = models.CharField(max_length=64, blank=True)
    # What the image is made of: equal keys, equal images (tagrules.inputs_key).
    inputs_key = models.CharField(max_length=64, db_index=True)
    image = models.CharField(max_length=500, help_text="reference in the target registry")
    local_image = models.CharField(max_length=200, blank=True,
                                   help_text="name in the build worker's storage")
    reused_from = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True,
                                    related_name="+")
    digest = models.CharField(max_length=71, blank=True)
    size = models.BigIntegerField(null=True, blank=True, help_text="bytes: config and layers")
    log = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return f"build #{self.pk}"

    @property
    def finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish (or to now while running)."""
        if not self.started_at:
            return None
        from django.utils import timezone

        return ((self.finished_at or timezone.now()) - self.started_at).total_seconds()

    @property
    def short_sha(self) -> str:
        return self.sha[:8]
