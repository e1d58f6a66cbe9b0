"""Application actions, shared by the UI, the REST API, the admin and the management commands."""
from __future__ import annotations

import fnmatch
import hmac
import zlib
from datetime import timedelta

import django_rq
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.engine.errors import SourceError
from apps.repositories import services as repositories

from . import jobs, reconcile
from .models import Application, HistoryEntry, Operation, Project
SYNC_QUEUE = "sync"


class ApplicationError(Exception):
    """An action on an application cannot be done; the message says why."""


class OperationInProgress(ApplicationError):
    pass


class NotPermitted(ApplicationError):
    """The project does not allow this source or destination."""


class OperationFinished(ApplicationError):
    """The operation has already ended; there is nothing to terminate."""


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
    """Save a new application the project allows, and refresh it soon."""
    app = Application(**fields)
    check_project_allows(app)
    app.save()
    schedule_refresh(app)
    return app


def update_application(app: Application, **fields) -> Application:
    """Change an application's spec. Its name is how the cluster's objects are tracked, so it
    cannot change; the result must still be allowed by its project."""
    if "name" in fields and fields["name"] != app.name:
        raise ApplicationError("an application cannot be renamed (its resources are tracked by name)")
    for name, value in fields.items():
        setattr(app, name, value)
    check_project_allows(app)
    app.save()
    schedule_refresh(app)
    return app


def delete_application(app: Application) -> None:
    """Forget the application (its resources stay in the cluster); not while an operation runs."""
    if app.operations.filter(phase__in=Operation.ACTIVE).exists():
        raise OperationInProgress(f"{app.name} has an operation running; terminate it first")
    app.delete()


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
    database refuses a second (OperationInProgress)."""
    check_project_allows(app)
    options = {"prune": app.prune if prune is None else prune, "dry_run": dry_run}
    if resources:
        options["resources"] = list(resources)
    try:
        with transaction.atomic():
            op = Operation.objects.create(
                application=app, kind=kind, initiated_by=user, automated=automated,
                revision=revision, sha=revision if _is_sha(revision) else "", options=options)
    except IntegrityError:
        raise OperationInProgress(f"{app.name} already has an operation running") from None
    if enqueue:
        enqueue_operation(op)
    return op


def enqueue_operation(op: Operation) -> None:
    job_id = f"operation-{op.pk}"
    Operation.objects.filter(pk=op.pk).update(job_id=job_id)
    op.job_id = job_id
    # Someone's click goes ahead of background work; automated syncs wait their turn.
    django_rq.get_queue(SYNC_QUEUE).enqueue(jobs.run_operation, op.pk, job_id=job_id,
                                            job_timeout=settings.GITOPS_UI_OPERATION_TIMEOUT,
                                            at_front=not op.automated)


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
    the rollback (Argo CD's behaviour). `unpin` resumes following the branch.
    mode "git": commit, on the tracked branch, a revert of everything since that commit, so Git
    stays the truth and automated sync stays on. Returns the new commit's sha (a refresh and, if
    automated, a sync follow).
    """
    if entry.application_id != app.pk:
        raise ApplicationError("that history entry belongs to another application")
    if mode == "pin":
        with transaction.atomic():  # no pin without its operation (OperationInProgress)
            Application.objects.filter(pk=app.pk).update(pinned_revision=entry.sha, automated=False)
            app.pinned_revision, app.automated = entry.sha, False
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
    Application.objects.filter(pk=app.pk).update(pinned_revision="")
    app.pinned_revision = ""
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


def _repository_refresh_flag(repo_id: int) -> str:
    return f"gitops-ui:repository-refresh-queued:{repo_id}"


def schedule_refresh(app: Application) -> None:
    schedule_refresh_by_name(app.name)


def schedule_refresh_by_name(app_name: str) -> None:
    """Refresh soon, in a worker; requests made while one is still queued are merged.

    Takes a name so watch threads can call it without touching the database.
    """
    _queue_once(_refresh_flag(app_name), jobs.refresh, app_name)


def _queue_once(flag: str, job, *args, at_front: bool = False) -> None:
    """Enqueue `job` unless the same one is still waiting (`flag` is cleared when it starts);
    after commit (at once outside a transaction), so a rolled-back request queues nothing."""
    def queue_it():
        if django_rq.get_connection(SYNC_QUEUE).set(flag, 1, nx=True, ex=120):
            django_rq.get_queue(SYNC_QUEUE).enqueue(job, *args, at_front=at_front)

    transaction.on_commit(queue_it)


def refresh_now(app: Application) -> Operation | None:
    """Refresh in this process; an automated sync it calls for runs right away too."""
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
    """Refresh every application whose last refresh is older than its interval.

    Each app gets a stable extra delay of up to a tenth of the interval, so apps created together
    drift apart instead of being refreshed in one burst forever.
    """
    interval = settings.GITOPS_UI_REFRESH_INTERVAL
    now = timezone.now()
    candidates = Application.objects.select_related("repository", "cluster", "project").filter(
        Q(reconciled_at__isnull=True) | Q(reconciled_at__lt=now - timedelta(seconds=interval)))
    apps = [a for a in candidates if a.reconciled_at is None or
            a.reconciled_at + timedelta(seconds=interval * (1 + _jitter(a.name))) <= now]
    for op in reconcile.refresh_many(apps):
        enqueue_operation(op)
    return len(apps)


def _jitter(name: str) -> float:
    return zlib.crc32(name.encode()) % 1000 / 10000  # 0 to 0.1, the same for an app every time


def handle_push(url: str, token: str | None) -> list[Application]:
    """A push to `url` (from a webhook): refresh, at once, every app that uses it.

    The token must match the repository's webhook secret, or the global one; with neither set,
    any caller may trigger a refresh (a refresh only reads Git, it changes nothing by itself).
    """
    repos = repositories.find_by_url(url)
    for repo in repos:
        expected = repo.webhook_secret or settings.GITOPS_UI_WEBHOOK_SECRET
        if expected and not _same_secret(token, expected):
            raise NotPermitted("the webhook token does not match")
    if (not repos and settings.GITOPS_UI_WEBHOOK_SECRET
            and not _same_secret(token, settings.GITOPS_UI_WEBHOOK_SECRET)):
        raise NotPermitted("the webhook token does not match")
    for repo in repos:
        # Ahead of background refreshes (watch events, the schedule): a push is someone waiting.
        _queue_once(_repository_refresh_flag(repo.pk), jobs.refresh_repository, repo.pk,
                    at_front=True)
    return list(Application.objects.filter(repository__in=repos))


def refresh_repository(repo_id: int) -> int:
    """Refresh every app of one repository after a push: one ls-remote, the apps whose
    manifests changed first, their automated syncs run at once."""
    django_rq.get_connection(SYNC_QUEUE).delete(_repository_refresh_flag(repo_id))
    apps = list(Application.objects.select_related("repository", "cluster", "project")
                .filter(repository_id=repo_id))
    reconcile.refresh_many(apps, run_operation=lambda op: run_operation(op.pk))
    return len(apps)


def _same_secret(given: str | None, expected: str) -> bool:
    return hmac.compare_digest((given or "").encode(), expected.encode())  # constant time


def reap_stale_operations() -> int:
    """Mark operations whose worker died as Error, so the app can sync again."""
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
        if job is None or job.get_status() in ("failed", "stopped", "canceled"):
            lost.append(op.pk)
    count += Operation.objects.filter(pk__in=lost, phase=Operation.Phase.PENDING).update(
        phase=Operation.Phase.ERROR, finished_at=now,
        message="the queued job for this operation was lost; sync again to retry")
    return count


def run_operation(op_id: int) -> Operation | None:
    from . import operations

    return operations.run(op_id)
