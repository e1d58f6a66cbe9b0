"""Build actions: which tag rules a tag push matches, starting builds (queued for the build
worker, never run in a request), canceling them, their state changes and the concurrency limit.

A build goes queued → running → succeeded | failed | canceled. Starting is idempotent per
(rule, tag, commit): a repeated webhook delivery, or the same tag pushed again at the same
commit, finds the build already there unless that one failed or was canceled.
"""
from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from apps.applications.webhooks import WebhookSecretMissing
from apps.audit import services as audit
from apps.core.access import require
from apps.core.queues import job_queue, queue_errors, redis_connection
from apps.registries.oci import InvalidReference
from apps.repositories import services as repositories

from . import tagrules
from .buildlog import publish_status
from .models import Build, TagRule

log = logging.getLogger(__name__)

BUILDS_QUEUE = "builds"
TAG_PREFIX = "refs/tags/"
DELETED = "0" * 40
SLOT_LOCK = 0x6275696C64  # "build": the advisory lock that counts running builds


class BuildError(Exception):
    """A build cannot be started or acted on; the message says why."""


class NotCancelable(BuildError):
    """The build has finished already."""


TAG_RULE_FIELDS = ("repository", "project", "action", "pattern", "registry", "image_template",
                   "image_name", "dockerfile", "context", "build_args", "platform", "enabled",
                   "backend", "build_cluster", "build_namespace", "executor_image",
                   "build_node_selector", "build_tolerations")


# --- tag rules -----------------------------------------------------------------------------------
def save_tag_rule(rule: TagRule) -> TagRule:
    """Create or edit a tag rule (values already checked); the audit log gets what changed."""
    return audit.save_recorded(rule, "tagrule", TAG_RULE_FIELDS)


def delete_tag_rule(rule: TagRule) -> None:
    pk, name, project = rule.pk, str(rule), rule.project
    rule.delete()
    audit.record("tagrule.deleted", None, object_type="tagrule", object_name=name,
                 project=project, details={"id": pk})


# --- webhook intake ------------------------------------------------------------------------------
def matching_rules(repo, tag: str) -> list[tuple[TagRule, tagrules.Match]]:
    found = []
    for rule in repo.tag_rules.filter(enabled=True).select_related("registry", "project",
                                                                   "repository"):
        match = tagrules.match(rule.effective_pattern, tag)
        if match is not None:
            found.append((rule, match))
    return found


def refuse_unsigned_tag_builds(url: str, ref: str) -> None:
    """A tag that would start a build must come with a secret: WebhookSecretMissing (403) when
    a repository at `url` has a rule matching the tag and no webhook secret applies (its own,
    or GITOPS_UI_WEBHOOK_SECRET), whatever GITOPS_UI_WEBHOOK_OPEN says."""
    if not ref.startswith(TAG_PREFIX):
        return
    tag = ref[len(TAG_PREFIX):]
    for repo in repositories.find_by_url(url):
        if not (repo.webhook_secret or settings.GITOPS_UI_WEBHOOK_SECRET) \
                and matching_rules(repo, tag):
            raise WebhookSecretMissing(
                f"tag {tag[:100]} matches a tag rule of {repo.url}, and a webhook that starts "
                "builds must carry a secret: set the repository's webhook secret or "
                "GITOPS_UI_WEBHOOK_SECRET and send it as X-Gitlab-Token")


def start_tag_builds(repos, ref: str, sha: str | None, delivery: str = "") -> list[Build]:
    """The builds a pushed tag starts in `repos` (one per matching rule), queued. Nothing for
    a branch, a deleted tag, or a payload without the tagged commit."""
    if not ref.startswith(TAG_PREFIX) or not isinstance(sha, str):
        return []
    sha = sha.strip().lower()
    if len(sha) != 40 or sha == DELETED or not all(c in "0123456789abcdef" for c in sha):
        return []
    tag = ref[len(TAG_PREFIX):]
    started = []
    for repo in repos:
        for rule, _ in matching_rules(repo, tag):
            build = start_build(rule, tag, sha, trigger="webhook", delivery=delivery)
            if build is not None:
                started.append(build)
    return started


# --- starting and canceling ----------------------------------------------------------------------
def start_build(rule: TagRule, tag: str, sha: str, *, user=None, trigger: str = "",
                delivery: str = "") -> Build | None:
    """Queue the build of `sha` (tagged `tag`) by `rule`; the build already started for the
    same rule, tag and commit (not failed or canceled) instead, if there is one. None when the
    image reference cannot be made (logged, and the rule's template is to blame)."""
    if user is not None:
        require(user, "builds.start_build", rule)
    try:
        image = tagrules.image_reference(rule, tag, sha)
    except InvalidReference as exc:
        if user is not None:
            raise BuildError(str(exc)) from None
        log.warning("tag %s of %s: rule %s makes no image reference: %s", tag[:100],
                    rule.repository.url, rule.pk, exc)
        return None
    with transaction.atomic():
        TagRule.objects.select_for_update().get(pk=rule.pk)  # two deliveries at once: one build
        existing = (Build.objects.select_for_update()
                    .filter(rule=rule, tag=tag, sha=sha)
                    .exclude(status__in=(Build.Status.FAILED, Build.Status.CANCELED)).first())
        if existing:
            return existing
        build = Build.objects.create(
            repository=rule.repository, project=rule.project, rule=rule, action=rule.action,
            sha=sha, tag=tag, triggered_by=user, delivery=delivery[:64],
            trigger=user.get_username() if user is not None else (trigger or "webhook"),
            inputs_key=tagrules.inputs_key(rule, sha), image=image)
    try:
        enqueue(build)
    except Exception:
        build.delete()  # the sender retries; no queued build waits for a job that never comes
        raise
    audit.record("build.started", build, project=rule.project,
                 actor=user if user is not None else "webhook",
                 details={"tag": tag[:100], "sha": sha, "action": rule.action, "image": image})
    return build


def enqueue(build: Build) -> None:
    with queue_errors("the build"):
        job_queue(BUILDS_QUEUE).enqueue(
            "apps.builds.jobs.run_build", build.pk, job_id=f"build-{build.pk}",
            # Each buildah step has its own timeout (a build ends failed, with its log); rq's
            # kill of the whole process only backs them up: build, push, export and a wait.
            job_timeout=int(settings.GITOPS_UI_BUILD_TIMEOUT) * 3 + 600)


def cancel(build: Build, user=None) -> Build:
    """Cancel a queued build at once; a running one is stopped by its worker within a second
    (its buildah process group killed). NotCancelable once it has finished."""
    if user is not None:
        require(user, "builds.cancel_build", build)
    with transaction.atomic():
        build = Build.objects.select_for_update().get(pk=build.pk)
        if build.finished:
            raise NotCancelable(f"{build} has already {build.status}")
        if build.status == Build.Status.QUEUED:
            build.status, build.finished_at = Build.Status.CANCELED, timezone.now()
            build.message = f"canceled by {_who(user)} before it started"
        else:  # the worker stops it and keeps this message
            build.message = f"canceled by {_who(user)} while running"
        build.cancel_requested = True
        build.save(update_fields=["status", "finished_at", "message", "cancel_requested"])
    audit.record("build.canceled", build, project=build.project, actor=user)
    publish_status(build)
    if build.status == Build.Status.CANCELED:  # a running one is reported by its worker
        report_to_gitlab(build)
    return build


def _who(user) -> str:
    return user.get_username() if user is not None else "the system"


# --- state changes (the worker's side) -----------------------------------------------------------
def claim_slot(build_id: int) -> str:
    """Move a queued build to running if fewer than GITOPS_UI_MAX_CONCURRENT_BUILDS run:
    "running"; "wait" when the limit is reached; "gone" when it is no longer queued (canceled)."""
    fail_abandoned()
    with transaction.atomic():
        if connection.vendor == "postgresql":  # two workers must not both take the last slot
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SLOT_LOCK])
        build = Build.objects.select_for_update().filter(pk=build_id).first()
        if build is None or build.status != Build.Status.QUEUED:
            return "gone"
        if Build.objects.filter(status=Build.Status.RUNNING).count() \
                >= settings.GITOPS_UI_MAX_CONCURRENT_BUILDS:
            return "wait"
        build.status, build.started_at = Build.Status.RUNNING, timezone.now()
        build.save(update_fields=["status", "started_at"])
    publish_status(build)
    report_to_gitlab(build)
    return "running"


def wait_for_slot(build_id: int, note) -> bool:
    """Block until the build holds a slot (True) or is no longer queued (False)."""
    noted = False
    while True:
        outcome = claim_slot(build_id)
        if outcome != "wait":
            return outcome == "running"
        if not noted:
            note(f"waiting: {settings.GITOPS_UI_MAX_CONCURRENT_BUILDS} build(s) already "
                 "running (GITOPS_UI_MAX_CONCURRENT_BUILDS)")
            noted = True
        time.sleep(1)


def fail_abandoned() -> list[int]:
    """Fail the builds marked running whose job no worker runs any more (its process was
    killed, the machine restarted): they would hold a slot for good."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job, JobStatus

    gone = []
    connection = redis_connection(BUILDS_QUEUE)
    for pk in Build.objects.filter(status=Build.Status.RUNNING).values_list("pk", flat=True):
        try:
            status = Job.fetch(f"build-{pk}", connection=connection).get_status()
        except NoSuchJobError:
            status = None
        if status not in (JobStatus.STARTED, JobStatus.QUEUED):
            gone.append(pk)
            finish(pk, Build.Status.FAILED, "the build worker stopped while the build ran")
    return gone


def cancel_requested(build_id: int) -> bool:
    return Build.objects.filter(pk=build_id, cancel_requested=True).exists()


def finish(build_id: int, status: str, message: str = "", **fields) -> Build:
    Build.objects.filter(pk=build_id).update(status=status, message=message[:2000],
                                             finished_at=timezone.now(), **fields)
    build = Build.objects.get(pk=build_id)
    publish_status(build)
    report_to_gitlab(build)
    return build


def write_back_pushed(build: Build) -> None:
    """After a push: the applications whose image update policy accepts the image get it
    written into their deploy repository (apps/applications/writeback.py, on the sync queue),
    as a Harbor PUSH_ARTIFACT webhook would do for an image pushed elsewhere."""
    from apps.applications import writeback
    from apps.core.queues import QueueUnavailable
    from apps.engine import images

    image = images.parse(build.image)
    try:
        writeback.queue_write_back(image.name, image.tag or "latest", build.digest)
    except QueueUnavailable as exc:  # the image is pushed; Harbor's webhook or a retry may follow
        log.warning("write-back after build %s not queued: %s", build.pk, exc)


GITLAB_STATES = {Build.Status.QUEUED: "pending", Build.Status.RUNNING: "running",
                 Build.Status.SUCCEEDED: "success", Build.Status.FAILED: "failed",
                 Build.Status.CANCELED: "canceled"}


def report_to_gitlab(build: Build) -> None:
    """The build's state as a commit status in its repository's GitLab project (linked
    repositories only), linking to the build page when GITOPS_UI_PUBLIC_URL is set. Called by
    the worker and by cancel, never in a webhook's request; a refusal is logged by
    report_commit_status and never fails the build."""
    from apps.repositories import gitlab

    base = settings.GITOPS_UI_PUBLIC_URL.rstrip("/")
    page = f"{base}{reverse('builds:detail', args=[build.pk])}" if base else ""
    try:
        gitlab.report_commit_status(build.repository, build.sha, GITLAB_STATES[build.status],
                                    page, f"{build.action} {build.image}")
    except ValueError as exc:  # not a full sha (a build started by hand from a short one)
        log.warning("commit status of build %s not reported: %s", build.pk, exc)


def reusable_build(build: Build) -> Build | None:
    """The newest succeeded build with the same inputs whose image the worker still holds a
    name for (the caller checks the storage)."""
    return (Build.objects.filter(inputs_key=build.inputs_key, status=Build.Status.SUCCEEDED)
            .exclude(pk=build.pk).exclude(local_image="").order_by("-finished_at").first())
