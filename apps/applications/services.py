"""Application actions, shared by the UI, the REST API, the admin and the management commands."""
from __future__ import annotations

import fnmatch
import logging
import zlib
from contextlib import suppress
from datetime import timedelta

import django_rq
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.core.queues import REDIS_DOWN, QueueUnavailable, queue_errors
from apps.engine.errors import SourceError
from apps.repositories import services as repositories

from . import jobs, reconcile, spec
from .models import Application, HistoryEntry, Operation, Project, ProjectMember
SYNC_QUEUE = "sync"
log = logging.getLogger(__name__)


class ApplicationError(Exception):
    """An action on an application cannot be done; the message says why."""


class OperationInProgress(ApplicationError):
    pass


class NotPermitted(ApplicationError):
    """The project does not allow this source or destination."""


class OperationFinished(ApplicationError):
    """The operation has already ended; there is nothing to terminate."""


# --- projects ----------------------------------------------------------------------------------
@transaction.atomic
def save_project(project: Project, members: list[dict] | None = None) -> Project:
    """Save a project; `members` ([{"user": User, "role": "operator"}]), when given, replaces
    who may see and act on its applications."""
    project.save()
    if members is not None:
        project.members.all().delete()
        ProjectMember.objects.bulk_create(
            ProjectMember(project=project, user=m["user"], role=m["role"]) for m in members)
    return project


# --- applications ------------------------------------------------------------------------------
def list_applications(*, sync: str = "", health: str = "", project: str = "", search: str = ""):
    """Applications, filtered by sync and health status, project name and a name/repo search."""
    apps = Application.objects.select_related("project", "repository", "cluster")
    if sync:
        apps = apps.filter(sync_status__iexact=sync)
    if health:
        apps = apps.filter(health_status__iexact=health)
    if project:
        apps = apps.filter(project__name=project)
    if search:
        apps = apps.filter(Q(name__icontains=search) | Q(repository__url__icontains=search)
                           | Q(namespace__icontains=search) | Q(path__icontains=search))
    return apps


def create_application(**fields) -> Application:
    """Save a new application the project allows, and refresh it soon. spec.InvalidSpec when a
    field holds what the engine cannot use (spec.py)."""
    app = Application(**spec.clean(fields))
    check_project_allows(app)
    app.save()
    _refresh_soon(app)
    return app


def update_application(app: Application, **fields) -> Application:
    """Change an application's spec. Its name is how the cluster's objects are tracked, so it
    cannot change; the result must still be allowed by its project."""
    if "name" in fields and fields["name"] != app.name:
        raise ApplicationError("an application cannot be renamed (its resources are tracked by name)")
    for name, value in spec.clean(fields).items():
        setattr(app, name, value)
    check_project_allows(app)
    app.save()
    _refresh_soon(app)
    return app


def _refresh_soon(app: Application) -> None:
    """The change is saved either way: with the queue down, the reconciler's schedule picks the
    app up (within GITOPS_UI_REFRESH_INTERVAL) instead of a worker right away."""
    try:
        schedule_refresh(app)
    except QueueUnavailable as exc:
        log.warning("%s saved; %s", app.name, exc)


# Argo CD's choices when an application is deleted: its resources with it (propagation policy
# foreground or background), or not.
FOREGROUND, BACKGROUND, NO_CASCADE = "foreground", "background", "false"


def deletion_policy(cascade: str | None = None, propagation_policy: str | None = None) -> str:
    """FOREGROUND, BACKGROUND or NO_CASCADE from what a user wrote, in our spelling
    (cascade=foreground|background|false) or Argo CD's (cascade=true|false with
    propagationPolicy=foreground|background). Cascading, foreground, is the default."""
    cascade = (cascade or "").strip().lower()
    policy = (propagation_policy or "").strip().lower()
    valid = ("cascade is foreground, background, true or false; propagationPolicy is "
             "foreground or background")
    if cascade not in ("", "true", FOREGROUND, BACKGROUND, NO_CASCADE):
        raise ApplicationError(f"unknown cascade {cascade!r}: {valid}")
    if policy not in ("", FOREGROUND, BACKGROUND):
        raise ApplicationError(f"unknown propagationPolicy {policy!r}: {valid}")
    if cascade == NO_CASCADE:
        if policy:  # Argo CD refuses it too
            raise ApplicationError(
                "cannot set a propagationPolicy when cascading is off (cascade=false)")
        return NO_CASCADE
    if cascade in (FOREGROUND, BACKGROUND) and policy and policy != cascade:
        raise ApplicationError(f"cascade={cascade} and propagationPolicy={policy} disagree")
    return cascade if cascade in (FOREGROUND, BACKGROUND) else policy or FOREGROUND


def delete_application(app: Application, user=None, *, cascade: str = FOREGROUND,
                       enqueue: bool = True) -> Operation | None:
    """Delete the application as Argo CD does; not while an operation runs (OperationInProgress).

    FOREGROUND or BACKGROUND: a "delete" operation, queued for a worker (or returned Pending
    for the caller to run with run_deletion, enqueue=False), deletes the objects the app tracks
    with that propagation policy, then the app (deletion.py). Meanwhile `app.deletion` says so
    and no sync can start. If it fails, the app stays with a DeletionError condition.
    An app that never ran an operation and shows nothing live has deployed nothing: it goes
    at once, as with NO_CASCADE, which deletes only the app: its objects stay in the cluster,
    with their tracking annotation, as Argo CD leaves its own (an app of the same name adopts
    them). Returns None when the app is gone already. QueueUnavailable leaves all as it was.
    """
    if cascade not in (FOREGROUND, BACKGROUND, NO_CASCADE):
        raise ApplicationError(f"unknown cascade {cascade!r}: foreground, background or false")
    if app.operations.filter(phase__in=Operation.ACTIVE).exists():
        raise OperationInProgress(f"{app.name} has an operation running; terminate it first")
    if cascade == NO_CASCADE or not _may_have_deployed(app):
        app.delete()
        return None
    with transaction.atomic():
        op = _new_operation(app, enqueue=enqueue, kind=Operation.Kind.DELETE, initiated_by=user,
                            options={"cascade": cascade})
        Application.objects.filter(pk=app.pk).update(deletion=cascade)
    app.deletion = cascade
    if enqueue:
        try:
            enqueue_operation(op)
        except QueueUnavailable:
            Application.objects.filter(pk=app.pk).update(deletion="")
            app.deletion = ""
            raise
    return op


def _may_have_deployed(app: Application) -> bool:
    return app.operations.exists() or any(r.get("health") != "Missing" for r in app.resources or [])


def run_deletion(op_id: int) -> Operation | None:
    from . import deletion

    return deletion.run(op_id)


def clear_abandoned_deletions() -> int:
    """Clear `deletion` on apps whose delete operation ended without running to its end (its
    worker died and the reaper failed it, or its job could not be queued)."""
    deleting = Operation.objects.filter(kind=Operation.Kind.DELETE, phase__in=Operation.ACTIVE)
    return Application.objects.exclude(deletion="").exclude(
        pk__in=deleting.values("application_id")).update(deletion="")


# --- validation --------------------------------------------------------------------------------
def check_project_allows(app: Application) -> None:
    project: Project = app.project
    if project.source_repos and not any(fnmatch.fnmatchcase(app.repository.url, p)
                                        for p in project.source_repos):
        raise NotPermitted(f"project {project.name} does not allow repository {app.repository.url}")
    if project.destinations and not any(
            fnmatch.fnmatchcase(app.cluster.name, d.get("cluster", "*"))
            and fnmatch.fnmatchcase(app.namespace, d.get("namespace", "*"))
            for d in project.destinations):
        raise NotPermitted(f"project {project.name} does not allow destination "
                           f"{app.cluster.name}/{app.namespace}")


# --- operations --------------------------------------------------------------------------------
def request_sync(app: Application, user=None, *, revision: str = "", prune: bool | None = None,
                 dry_run: bool = False, resources: list[str] | None = None,
                 automated: bool = False, kind: str = Operation.Kind.SYNC,
                 enqueue: bool = True) -> Operation:
    """Create a sync operation and queue it. One active operation per application: the
    database refuses a second (OperationInProgress). QueueUnavailable when the job cannot be
    queued: no operation is left behind then."""
    check_project_allows(app)
    options = {"prune": app.prune if prune is None else prune, "dry_run": dry_run}
    if resources:
        options["resources"] = list(resources)
    op = _new_operation(app, enqueue=enqueue, kind=kind, initiated_by=user, automated=automated,
                        revision=revision, sha=revision if _is_sha(revision) else "",
                        options=options)
    if enqueue:
        enqueue_operation(op)
    return op


def _new_operation(app: Application, *, enqueue: bool, **fields) -> Operation:
    """A Pending operation of `app`; the database refuses a second active one
    (OperationInProgress). When it is to be queued, Redis is asked first, before anything is
    written: in a caller's transaction (a pinned rollback, a deletion) the whole action is then
    undone, not just the operation (QueueUnavailable)."""
    if enqueue:
        with queue_errors(f"the {fields['kind']} of {app.name}"):
            django_rq.get_connection(SYNC_QUEUE).ping()
    try:
        with transaction.atomic():
            return Operation.objects.create(application=app, **fields)
    except IntegrityError:
        raise OperationInProgress(f"{app.name} already has an operation running") from None


def enqueue_operation(op: Operation) -> None:
    """Queue the operation's job once its row is committed. If the queue cannot take it, the
    operation is deleted (it never started, and a Pending row would block the app's next sync
    until reaped) and QueueUnavailable raised."""
    job_id = f"operation-{op.pk}"
    Operation.objects.filter(pk=op.pk).update(job_id=job_id)
    op.job_id = job_id

    def queue_it():
        try:
            with queue_errors(f"the {op.kind} of {op.application.name}"):
                # Someone's click goes ahead of background work; automated syncs wait their turn.
                job = (jobs.delete_application if op.kind == Operation.Kind.DELETE
                       else jobs.run_operation)
                django_rq.get_queue(SYNC_QUEUE).enqueue(
                    job, op.pk, job_id=job_id,
                    job_timeout=settings.GITOPS_UI_OPERATION_TIMEOUT, at_front=not op.automated)
        except QueueUnavailable:
            Operation.objects.filter(pk=op.pk, phase=Operation.Phase.PENDING).delete()
            raise

    transaction.on_commit(queue_it)


def terminate(op: Operation) -> Operation:
    """Stop a running operation between steps; a pending one never starts."""
    if op.phase == Operation.Phase.PENDING:
        Operation.objects.filter(pk=op.pk, phase=Operation.Phase.PENDING).update(
            phase=Operation.Phase.TERMINATED, message="terminated before it started",
            finished_at=timezone.now())
    elif op.phase == Operation.Phase.RUNNING:
        Operation.objects.filter(pk=op.pk).update(terminate_requested=True)
    else:
        raise OperationFinished(f"operation {op.pk} is already {op.phase}")
    op.refresh_from_db()
    return op


def rollback(app: Application, entry: HistoryEntry, user=None, *, mode: str = "pin") -> Operation | str:
    """Bring back what `entry` deployed.

    mode "pin": sync that commit and pin it; automated sync is turned off so Git does not undo
    the rollback (Argo CD's behaviour), and remembered as on (resume_automated). `unpin`
    resumes following the branch and turns it back on.
    mode "git": commit, on the tracked branch, a revert of everything since that commit, so Git
    stays the truth; the app is unpinned, so automated sync is on again if a pinned rollback had
    turned it off. Returns the new commit's sha (a refresh and, if automated, a sync follow;
    `app.automated` says which).
    """
    if entry.application_id != app.pk:
        raise ApplicationError("that history entry belongs to another application")
    if mode == "pin":
        resume = app.automated or app.resume_automated  # a second pin keeps the first one's memory
        with transaction.atomic():  # no pin without its operation (OperationInProgress)
            Application.objects.filter(pk=app.pk).update(
                pinned_revision=entry.sha, automated=False, resume_automated=resume)
            app.pinned_revision, app.automated, app.resume_automated = entry.sha, False, resume
            return request_sync(app, user, revision=entry.sha, kind=Operation.Kind.ROLLBACK)
    if mode == "git":
        branch = tracked_branch(app)
        author = _author(user)
        try:
            sha = repositories.repo_cache().revert_to(
                app.repository.url, branch, entry.sha,
                f"Roll back {app.name} to {entry.sha[:12]}\n\nRequested through GitOps UI by {author}.",
                author, repositories.credentials(app.repository))
        except SourceError as exc:
            raise ApplicationError(f"rollback in Git failed: {exc}") from None
        unpin(app)  # follow the branch again, which now holds the revert
        return sha
    raise ApplicationError(f"unknown rollback mode {mode!r} (pin or git)")


def unpin(app: Application) -> None:
    """Follow the revision again; automated sync comes back on if a pinned rollback turned it off."""
    with transaction.atomic():
        Application.objects.filter(pk=app.pk, resume_automated=True).update(automated=True)
        Application.objects.filter(pk=app.pk).update(pinned_revision="", resume_automated=False)
    app.refresh_from_db(fields=["pinned_revision", "automated", "resume_automated"])
    schedule_refresh(app)


def tracked_branch(app: Application) -> str:
    """The branch the app follows (rollback in Git commits there)."""
    refs = repositories.refs(app.repository)
    rev = app.revision.strip() or "HEAD"
    if rev == "HEAD":
        head = refs.get("HEAD")
        branches = [r for r, sha in refs.items() if r.startswith("refs/heads/") and sha == head]
        if not branches:
            raise ApplicationError("cannot tell which branch HEAD is; set the revision to a branch")
        return branches[0].removeprefix("refs/heads/")
    if f"refs/heads/{rev}" in refs:
        return rev
    raise ApplicationError(f"revision {rev!r} is not a branch; rollback in Git needs one")


def _author(user) -> str:
    if user is None:
        return "GitOps UI <gitops-ui@localhost>"
    return f"{user.get_username()} <{user.email or f'{user.get_username()}@gitops-ui.local'}>"


def _is_sha(revision: str) -> bool:
    return len(revision) == 40 and all(c in "0123456789abcdef" for c in revision)


# --- refresh -----------------------------------------------------------------------------------
def _refresh_flag(app_name: str) -> str:
    return f"gitops-ui:refresh-queued:{app_name}"


def _repository_refresh_flag(repo_id: int, ref: str = "") -> str:
    # Per ref: a tag push refreshes other apps than a branch push arriving at the same time.
    return f"gitops-ui:repository-refresh-queued:{repo_id}" + (f":{ref}" if ref else "")


def schedule_refresh(app: Application) -> None:
    schedule_refresh_by_name(app.name)


def schedule_refresh_by_name(app_name: str) -> None:
    """Refresh soon, in a worker; requests made while one is still queued are merged.

    Takes a name so watch threads can call it without touching the database.
    """
    _queue_once(_refresh_flag(app_name), jobs.refresh, app_name)


def _queue_once(flag: str, job, *args, at_front: bool = False) -> None:
    """Enqueue `job` unless the same one is still waiting (`flag` is cleared when it starts);
    after commit (at once outside a transaction), so a rolled-back request queues nothing.
    QueueUnavailable when Redis cannot be reached."""
    def queue_it():
        connection = django_rq.get_connection(SYNC_QUEUE)
        with queue_errors("the refresh"):
            if connection.set(flag, 1, nx=True, ex=120):
                try:
                    django_rq.get_queue(SYNC_QUEUE).enqueue(job, *args, at_front=at_front)
                except REDIS_DOWN:
                    with suppress(*REDIS_DOWN):  # or the flag would merge the retry into nothing
                        connection.delete(flag)
                    raise

    transaction.on_commit(queue_it)


def refresh_now(app: Application) -> Operation | None:
    """Refresh in this process; an automated sync it calls for runs right away too. A failure,
    a bug included, ends up as a condition on the app (reconcile.refresh never raises)."""
    # Cleared first: a push arriving during this refresh must schedule another one.
    django_rq.get_connection(SYNC_QUEUE).delete(_refresh_flag(app.name))
    op = reconcile.refresh(app)
    if op:
        run_operation(op.pk)
    return op


def compare_now(app: Application) -> Application:
    """Refresh in this process without starting an automated sync: the app's status and
    per-resource differences, fresh (used by `app_diff`)."""
    reconcile.refresh(app, auto_sync=False)
    return app


def refresh_due() -> int:
    """Refresh every application whose last refresh is older than its interval; return how
    many were refreshed. Runs every few seconds (the reconciler enqueues it).

    Each app gets a stable extra delay of up to a tenth of the interval, so apps created together
    drift apart instead of being refreshed in one burst forever.

    Each cluster that has applications is also probed, once per pass: while it does not answer,
    its apps show it (sync and health Unknown, a ClusterError condition) instead of a stale
    "Synced", and are not refreshed; once it answers, the apps whose refresh failed on it are
    refreshed at once, so a commit pushed during the outage is applied within one pass.
    """
    interval = settings.GITOPS_UI_REFRESH_INTERVAL
    now = timezone.now()
    apps = Application.objects.select_related("repository", "cluster", "project")
    candidates = apps.filter(
        Q(reconciled_at__isnull=True) | Q(reconciled_at__lt=now - timedelta(seconds=interval)))
    due = [a for a in candidates if a.reconciled_at is None or
           a.reconciled_at + timedelta(seconds=interval * (1 + _jitter(a.name))) <= now]
    due_ids = [a.pk for a in due]
    down = reconcile.unreachable_clusters()
    # A condition of type ClusterError shows in the JSON text as "ClusterError", quotes included.
    failed_on_cluster = Q(conditions__icontains='"ClusterError"')
    for app in apps.filter(Q(cluster_id__in=down) & (~failed_on_cluster | Q(pk__in=due_ids))):
        reconcile.mark_unreachable(app, down[app.cluster_id])
    back = apps.filter(failed_on_cluster).exclude(cluster_id__in=down).exclude(pk__in=due_ids)
    to_refresh = [a for a in due if a.cluster_id not in down] + list(back)
    for op in reconcile.refresh_many(to_refresh):
        enqueue_operation(op)
    return len(to_refresh)


def _jitter(name: str) -> float:
    return zlib.crc32(name.encode()) % 1000 / 10000  # 0 to 0.1, the same for an app every time


def tracks_ref(app: Application, ref: str, default_branch: str = "") -> bool:
    """Whether a push to `ref` can move what `app` deploys. An app pinned to a commit, or whose
    revision is a commit sha, never moves; HEAD follows the default branch (any branch, when
    the sender does not say which is the default)."""
    if not ref:
        return True
    revision = app.target_revision.strip() or "HEAD"
    short = ref.removeprefix("refs/heads/").removeprefix("refs/tags/")
    if revision in (ref, short):
        return True
    return (revision == "HEAD" and ref.startswith("refs/heads/")
            and (not default_branch or short == default_branch))


def refresh_repository(repo_id: int, ref: str = "", default_branch: str = "") -> int:
    """Refresh the apps of one repository a push to `ref` can move (all without a ref): one
    ls-remote, the apps whose manifests changed first, their automated syncs run at once.
    Returns how many apps were refreshed.

    A push of a commit already handled costs that ls-remote only (webhook floods, redeliveries,
    polling seeing what a webhook already refreshed). "Handled" (polling.Handled, per repository
    and ref, in Redis): the last time this ran for `ref`, ls-remote gave the same sha, every app
    that followed the ref was compared with the cluster at it (a failed refresh, recorded by
    reconcile.record_failure as sync Unknown, does not count), and so its automated sync was
    decided. Then nothing is refreshed but the apps whose refresh failed at that sha: those are
    retried by every delivery. A sha another worker is refreshing right now counts as handled
    (that worker records the outcome). What changed on an app's side (its spec edited, a new
    app) goes through its own refresh (schedule_refresh), which never consults this; drift in
    the cluster, through the periodic refresh. Without a ref (a generic webhook) every app is
    refreshed, as before.
    """
    from . import polling

    redis = django_rq.get_connection(SYNC_QUEUE)
    redis.delete(_repository_refresh_flag(repo_id, ref))
    apps = [app for app in Application.objects.select_related("repository", "cluster", "project")
            .filter(repository_id=repo_id) if tracks_ref(app, ref, default_branch)]
    if not ref or not apps:
        reconcile.refresh_many(apps, run_operation=lambda op: run_operation(op.pk))
        return len(apps)
    try:
        refs = repositories.refs(apps[0].repository)
    except Exception as exc:  # as refresh_many would: shown on each app, nothing recorded
        for app in apps:
            reconcile.record_failure(app, exc)
        return len(apps)
    now = polling.Handled(refs.get(ref, ""), refs.get(f"{ref}^{{}}", ""))
    last = polling.handled(repo_id, ref)
    if last is not None and last.sha == now.sha:
        apps = [app for app in apps if app.pk in last.failed]  # only those still to retry
        if not apps and last.failed:  # they no longer follow the ref (deleted, edited)
            polling.record_handled(repo_id, ref, now)
    claim = f"gitops-ui:repository-refreshing:{repo_id}:{ref}:{now.sha}"
    if not apps or not redis.set(claim, 1, nx=True, ex=600):
        return 0  # handled, or being handled by another worker
    try:
        # On the refs listed above: a push costs one ls-remote, not two.
        reconcile.refresh_listed(apps, refs, run_operation=lambda op: run_operation(op.pk))
        # Only a failed refresh leaves sync Unknown (reconcile.record_failure).
        failed = tuple(sorted(app.pk for app in apps if app.sync_status == "Unknown"))
        polling.record_handled(repo_id, ref, polling.Handled(now.sha, now.peeled, failed))
    finally:
        redis.delete(claim)
    return len(apps)


def schedule_repository_refresh(repo_id: int, ref: str = "", default_branch: str = "", *,
                                at_front: bool = False) -> None:
    """Queue refresh_repository for a move of `ref` (every app without one), merged with one
    still waiting for the same ref; polling.py calls it when ls-remote shows a ref moved.
    QueueUnavailable when Redis cannot be reached."""
    _queue_once(_repository_refresh_flag(repo_id, ref), jobs.refresh_repository, repo_id,
                *((ref, default_branch) if ref else ()), at_front=at_front)


def reap_stale_operations() -> int:
    """Mark operations whose worker died as Error, so the app can sync again; queue again a
    recent Pending operation whose job vanished (Redis lost it). Returns how many were failed."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.GITOPS_UI_OPERATION_HEARTBEAT * 10 + 30)
    count = Operation.objects.filter(phase=Operation.Phase.RUNNING, heartbeat_at__lt=stale).update(
        phase=Operation.Phase.ERROR, finished_at=now,
        message="the worker running this operation stopped (no heartbeat); sync again to retry")
    lost = []
    queue = django_rq.get_queue(SYNC_QUEUE)
    for op in Operation.objects.filter(phase=Operation.Phase.PENDING,
                                       created_at__lt=now - timedelta(minutes=2)):
        job = queue.fetch_job(op.job_id) if op.job_id else None
        if job is not None and job.get_status() not in ("failed", "stopped", "canceled"):
            continue  # still waiting for a worker
        # Someone asked for this sync: queue it again rather than drop it. Running a job twice
        # is harmless (operations.run claims the operation with a conditional UPDATE). A job
        # that ran and failed, or a request too old to still be meant, is given up.
        if job is None and op.created_at > now - timedelta(minutes=10):
            try:
                enqueue_operation(op)
                continue
            except QueueUnavailable:
                pass
        lost.append(op.pk)
    count += Operation.objects.filter(pk__in=lost, phase=Operation.Phase.PENDING).update(
        phase=Operation.Phase.ERROR, finished_at=now,
        message="the queued job for this operation was lost; sync again to retry")
    clear_abandoned_deletions()
    return count


def run_operation(op_id: int) -> Operation | None:
    from . import operations

    return operations.run(op_id)
