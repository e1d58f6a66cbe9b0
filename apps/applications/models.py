from django.conf import settings
from django.db import models

from apps.clusters.models import Cluster, dns_label
from apps.repositories.models import Repository

from . import labels as label_rules


class Project(models.Model):
    """Which repositories and destinations its applications may use (Argo CD's AppProject)."""

    name = models.CharField(max_length=63, unique=True, validators=[dns_label])
    description = models.TextField(blank=True)
    source_repos = models.JSONField(default=list, blank=True,
                                    help_text='URL globs, e.g. ["https://gitlab.example.com/team/*"]; '
                                              'empty means any')
    destinations = models.JSONField(default=list, blank=True,
                                    help_text='[{"cluster": "prod-*", "namespace": "shop-*"}]; '
                                              'empty means any')

    def __str__(self):
        return self.name


class ProjectMember(models.Model):
    """A user's role in one project (apps/core/access.py says what each role may do)."""

    class Role(models.TextChoices):
        VIEWER = "viewer", "viewer: read"
        OPERATOR = "operator", "operator: sync, rollback, refresh, terminate"
        ADMIN = "admin", "admin: also create, edit and delete applications"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="project_roles")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        ordering = ["project", "user"]
        constraints = [models.UniqueConstraint(fields=["project", "user"],
                                               name="one_role_per_user_and_project")]

    def __str__(self):
        return f"{self.user} is {self.role} of {self.project}"


class Application(models.Model):
    class Tool(models.TextChoices):
        AUTO = "", "detect"
        DIRECTORY = "directory", "plain directory"
        KUSTOMIZE = "kustomize", "Kustomize"
        HELM = "helm", "Helm"
        JSONNET = "jsonnet", "Jsonnet"

    name = models.CharField(max_length=53, unique=True, validators=[dns_label])
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="applications")
    labels = models.JSONField(default=dict, blank=True, validators=[label_rules.validate],
                              help_text='{"team": "web", "env": "prod"}: Kubernetes label keys '
                                        'and values, for grouping and selecting applications')
    # Source
    repository = models.ForeignKey(Repository, on_delete=models.PROTECT, related_name="applications")
    revision = models.CharField(max_length=200, default="HEAD",
                                help_text="branch, tag, commit or HEAD")
    path = models.CharField(max_length=500, default=".")
    # Set: the repository is a Helm repository (https://, its index.yaml) or an OCI registry
    # (oci://host/path), `revision` the chart version or range, and `path` is not used.
    chart = models.CharField(max_length=200, blank=True, help_text=(
        "a chart of a Helm or OCI repository instead of Git; the revision is then its version "
        "or a range such as 1.2.* or >=1.0.0 <2.0.0"))
    tool = models.CharField(max_length=16, choices=Tool.choices, blank=True, default="")
    source = models.JSONField(default=dict, blank=True, help_text=(
        'include/exclude globs, recurse, helm {release_name, values_files, values, parameters}, '
        'kustomize {name_prefix, name_suffix, namespace, images}'))
    # Destination
    cluster = models.ForeignKey(Cluster, on_delete=models.PROTECT, related_name="applications")
    namespace = models.CharField(max_length=63, validators=[dns_label])
    # Sync policy
    automated = models.BooleanField(default=False, help_text="sync when Git changes")
    prune = models.BooleanField(default=False, help_text="delete what was removed from Git")
    self_heal = models.BooleanField(default=False, help_text="undo changes made in the cluster")
    allow_empty = models.BooleanField(default=False,
                                      help_text="let an automated sync delete every resource")
    sync_options = models.JSONField(default=list, blank=True, help_text=(
        'e.g. ["CreateNamespace=true", "ApplyOutOfSyncOnly=true", "PruneLast=true", "Replace=true"]'))
    ignore_differences = models.JSONField(default=list, blank=True, help_text=(
        '[{"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]}]'))
    retry_limit = models.PositiveSmallIntegerField(
        default=2, help_text="automated retries of a failed revision, with backoff")
    pinned_revision = models.CharField(max_length=64, blank=True, help_text=(
        "set by a rollback: this commit is deployed instead of the revision until unpinned"))
    resume_automated = models.BooleanField(default=False, help_text=(
        "automated sync was on when a pinned rollback turned it off; unpinning turns it back on"))
    # Status, written by refreshes and operations
    sync_status = models.CharField(max_length=16, default="Unknown")
    health_status = models.CharField(max_length=16, default="Unknown")
    health_message = models.TextField(blank=True)
    target_sha = models.CharField(max_length=64, blank=True)
    synced_sha = models.CharField(max_length=64, blank=True)
    conditions = models.JSONField(default=list, blank=True)
    resources = models.JSONField(default=list, blank=True)
    reconciled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Set while a cascading deletion runs (a "delete" operation): the app goes once its
    # resources are gone; cleared if the deletion fails.
    deletion = models.CharField(max_length=16, blank=True, help_text=(
        "foreground or background while the application's resources are being deleted"))

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def target_revision(self) -> str:
        return self.pinned_revision or self.revision

    @property
    def label_pairs(self) -> list[str]:
        """Its labels as sorted `key=value` selectors, as the list shows and filters them."""
        return [f"{k}={v}" for k, v in sorted((self.labels or {}).items())]

    def has_option(self, option: str) -> bool:
        return option in self.sync_options


class Operation(models.Model):
    class Kind(models.TextChoices):
        SYNC = "sync"
        ROLLBACK = "rollback"
        DELETE = "delete"  # cascading deletion of the app's resources, then of the app

    class Phase(models.TextChoices):
        PENDING = "Pending"
        RUNNING = "Running"
        SUCCEEDED = "Succeeded"
        FAILED = "Failed"
        ERROR = "Error"
        TERMINATED = "Terminated"

    ACTIVE = (Phase.PENDING, Phase.RUNNING)

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="operations")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.SYNC)
    initiated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                     on_delete=models.SET_NULL)
    automated = models.BooleanField(default=False)
    revision = models.CharField(max_length=200, blank=True, help_text="as asked for")
    sha = models.CharField(max_length=64, blank=True, help_text="the commit it synced")
    options = models.JSONField(default=dict, blank=True)
    phase = models.CharField(max_length=16, choices=Phase.choices, default=Phase.PENDING)
    message = models.TextField(blank=True)
    resources = models.JSONField(default=list, blank=True)
    job_id = models.CharField(max_length=64, blank=True)
    terminate_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(
            fields=["application"], condition=models.Q(phase__in=["Pending", "Running"]),
            name="one_active_operation_per_application")]

    def __str__(self):
        return f"{self.kind} of {self.application} ({self.phase})"

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    @property
    def initiator(self) -> str:
        if self.automated:
            return "automated"
        return self.initiated_by.get_username() if self.initiated_by else "unknown"


class HistoryEntry(models.Model):
    """One successful deployment: what was synced, when and by whom; rollback targets."""

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="history")
    operation = models.OneToOneField(Operation, null=True, on_delete=models.SET_NULL)
    sha = models.CharField(max_length=64)
    revision = models.CharField(max_length=200, blank=True)
    source = models.JSONField(default=dict, blank=True, help_text="path, tool and options used")
    deployed_at = models.DateTimeField(auto_now_add=True)
    deployed_by = models.CharField(max_length=150, blank=True)
    images = models.JSONField(default=list, blank=True, help_text=(
        "container images of the synced manifests (containers and init containers), sorted"))

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "history entries"

    def __str__(self):
        return f"{self.application} @ {self.sha[:12]}"


class ImageUpdater(models.Model):
    """An image update policy of an application (Argo CD Image Updater's annotations, as a row):
    when `image` gets a new tag that `strategy` accepts, the application's folder in Git is
    edited to deploy it (writeback.py), committed, pushed, and the application refreshed."""

    class Strategy(models.TextChoices):
        SEMVER = "semver", "semver (newest version within the constraint)"
        NEWEST_BUILD = "newest-build", "newest build (the tag pushed last)"
        PATTERN = "pattern", "tag pattern (glob, or regexp:…)"

    class Target(models.TextChoices):
        AUTO = "", "automatic (kustomization if there is one, else the manifests)"
        KUSTOMIZE = "kustomize", "kustomization images:"
        HELM = "helm", "Helm values file"
        MANIFESTS = "manifests", "image: of plain manifests"

    application = models.ForeignKey(Application, on_delete=models.CASCADE,
                                    related_name="image_updaters")
    image = models.CharField(max_length=255, help_text=(
        "image repository without tag, as the registry names it: registry.local:5000/team/web"))
    strategy = models.CharField(max_length=16, choices=Strategy.choices,
                                default=Strategy.SEMVER)
    constraint = models.CharField(max_length=200, blank=True, help_text=(
        "semver: a version range (^1.2, >=1.0 <2); pattern and newest build: the tags allowed, "
        "a glob (v1.*) or regexp:<expression>; empty: any"))
    target = models.CharField(max_length=16, choices=Target.choices, blank=True, default="")
    helm_values_file = models.CharField(max_length=255, default="values.yaml", blank=True)
    helm_tag_key = models.CharField(max_length=200, default="image.tag", blank=True)
    helm_repository_key = models.CharField(max_length=200, blank=True)
    helm_digest_key = models.CharField(max_length=200, blank=True)
    pin_digest = models.BooleanField(default=True, help_text=(
        "write the pushed digest too (name:tag@sha256:…), so the cluster runs exactly that build"))
    branch = models.CharField(max_length=200, blank=True, help_text=(
        "branch to commit to; empty: the branch the application follows"))
    commit_author = models.CharField(max_length=200, blank=True, help_text=(
        "Name <email>; empty: GitOps UI <gitops-ui@localhost>"))
    commit_message = models.TextField(blank=True, help_text=(
        "template with {app}, {image}, {tag}, {digest}, {old_tag}; empty: the default"))
    enabled = models.BooleanField(default=True)
    # The outcome of the last write-back that concerned it, for the API and the admin.
    last_status = models.CharField(max_length=16, blank=True)
    last_message = models.TextField(blank=True)
    last_tag = models.CharField(max_length=128, blank=True)
    last_commit = models.CharField(max_length=64, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["application__name", "image"]
        constraints = [models.UniqueConstraint(fields=["application", "image"],
                                               name="one_image_updater_per_image")]

    def __str__(self):
        return f"{self.application} ← {self.image}"

    def clean(self):
        from .writeback import policy_problems  # the rules live with the write-back

        from django.core.exceptions import ValidationError

        problems = policy_problems(self)
        if problems:
            raise ValidationError(problems)
