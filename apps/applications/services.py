"""Application actions, shared by the UI, the REST API, the admin and the management commands."""
from __future__ import annotations

import fnmatch
import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.audit import services as audit
from apps.core.queues import QueueUnavailable, job_queue, queue_errors, redis_connection
from apps.engine.errors import SourceError
from apps.repositories import services as repositories

from . import queueing, spec
from .models import Application, HistoryEntry, Operation, Project, ProjectMember
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
    who may see and act on its applications. The audit log gets what changed, members too."""
    created = project.pk is None
    changes = {} if created else audit.changes(project)
    before = {} if created else member_roles(project)
    project.save()
    if members is not None:
        project.members.all().delete()
        ProjectMember.objects.bulk_create(
            ProjectMember(project=project, user=m["user"], role=m["role"]) for m in members)
    record_project_saved(project, created, changes, before)
    return project


def member_roles(project: Project) -> dict[str, str]:
    """{username: role} of the project's members."""
    return dict(project.members.values_list("user__username", "role"))


def record_project_saved(project: Project, created: bool, changes: dict,
                         members_before: dict[str, str]) -> None:
    """The audit entry of a project saved by save_project or the admin (whose member inline is
    saved after the project itself)."""
    after = member_roles(project)
    details = (audit.created_fields(project, ("name", "description", "source_repos",
                                              "destinations")) if created
               else {"changed": changes} if changes else {})
    member_changes = {name: {"from": members_before.get(name), "to": after.get(name)}
                      for name in sorted(set(members_before) | set(after))
                      if members_before.get(name) != after.get(name)}
    if member_changes:
        details["members"] = member_changes
    if created or details:
        audit.record("project.created" if created else "project.updated", project,
                     details=details)


def delete_project(project: Project) -> None:
    """Delete a project without applications (ProtectedError otherwise)."""
    pk, name = project.pk, project.name
    project.delete()
    audit.record("project.deleted", None, object_type="project", object_name=name,
                 details={"id": pk})


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
    spec.check_chart_source(app.chart, app.revision, app.repository.url, app.tool)
    check_project_allows(app)
    app.save()
    audit.record("application.created", app, details=audit.created_fields(app, APP_FIELDS))
    _refresh_soon(app)
    return app


def update_application(app: Application, **fields) -> Application:
    """Change an application's spec. Its name is how the cluster's objects are tracked, so it
    cannot change; the result must still be allowed by its project."""
    if "name" in fields and fields["name"] != app.name:
        raise ApplicationError("an application cannot be renamed (its resources are tracked by name)")
    for name, value in spec.clean(fields).items():
        setattr(app, name, value)
    spec.check_chart_source(app.chart, app.revision, app.repository.url, app.tool)
    check_project_allows(app)
    changes = audit.changes(app)
    app.save()
    if changes:
        audit.record("application.updated", app, details={"changed": changes})
    _refresh_soon(app)
    return app


# What the audit log shows of a new application (its spec).
APP_FIELDS = ("project", "labels", "repository", "revision", "path", "chart", "tool", "source",
              "cluster", "namespace", "automated", "prune", "self_heal", "allow_empty",
              "sync_options", "ignore_differences", "retry_limit")


def _refresh_soon(app: Application) -> None:
    """The change is saved either way: with the queue down, the reconciler's schedule picks the
    app up (within GITOPS_UI_REFRESH_INTERVAL) instead of a worker right away."""
    try:
        queueing.schedule_refresh_by_name(app.name)  # not schedule_refresh: no one asked for it
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
        audit.record("application.deleted", app, actor=user, details={"cascade": cascade})
        app.delete()
        return None
    with transaction.atomic():
        op = _new_operation(app, enqueue=enqueue, kind=Operation.Kind.DELETE, initiated_by=user,
                            options={"cascade": cascade})
        Application.objects.filter(pk=app.pk).update(deletion=cascade)
    app.deletion = cascade
    if enqueue:
        try:
            queueing.enqueue_operation(op)
        except QueueUnavailable:
            Application.objects.filter(pk=app.pk).update(deletion="")
            app.deletion = ""
            raise
    audit.record("application.delete", app, actor=user,
                 details={"cascade": cascade, "operation": op.pk})
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
    check_destination(project, app.cluster.name, app.namespace)


def check_destination(project: Project, cluster_name: str, namespace: str) -> None:
    """NotPermitted unless `project` may deploy to (or, for a kaniko build, run a Job in)
    `namespace` of cluster `cluster_name`."""
    if project.destinations and not any(
            fnmatch.fnmatchcase(cluster_name, d.get("cluster", "*"))
            and fnmatch.fnmatchcase(namespace, d.get("namespace", "*"))
            for d in project.destinations):
        raise NotPermitted(f"project {project.name} does not allow destination "
                           f"{cluster_name}/{namespace}")


# --- operations --------------------------------------------------------------------------------
def request_sync(app: Application, user=None, *, revision: str = "", prune: bool | None = None,
                 dry_run: bool = False, resources: list[str] | None = None,
                 automated: bool = False, kind: str = Operation.Kind.SYNC,
                 enqueue: bool = True, apply_out_of_sync_only: bool = False,
                 replace: bool = False) -> Operation:
    """Create a sync operation and queue it. One active operation per application: the
    database refuses a second (OperationInProgress). QueueUnavailable when the job cannot be
    queued: no operation is left behind then. `apply_out_of_sync_only` and `replace` turn
    those sync options on for this operation only."""
    check_project_allows(app)
    options = {"prune": app.prune if prune is None else prune, "dry_run": dry_run}
    options.update({name: True for name, on in (("apply_out_of_sync_only", apply_out_of_sync_only),
                                                 ("replace", replace)) if on})
    if resources:
        options["resources"] = list(resources)
    op = _new_operation(app, enqueue=enqueue, kind=kind, initiated_by=user, automated=automated,
                        revision=revision, sha=revision if _is_sha(revision) else "",
                        options=options)
    if enqueue:
        queueing.enqueue_operation(op)
    if kind == Operation.Kind.SYNC:  # a rollback records itself (rollback)
        audit.record("application.sync", app,
                     actor=user if user is not None else ("auto-sync" if automated else None),
                     details={"operation": op.pk, "revision": revision, **options})
    return op


def _new_operation(app: Application, *, enqueue: bool, **fields) -> Operation:
    """A Pending operation of `app`; the database refuses a second active one
    (OperationInProgress). When it is to be queued, Redis is asked first, before anything is
    written: in a caller's transaction (a pinned rollback, a deletion) the whole action is then
    undone, not just the operation (QueueUnavailable)."""
    if enqueue:
        with queue_errors(f"the {fields['kind']} of {app.name}"):
            redis_connection(queueing.SYNC_QUEUE).ping()
    try:
        with transaction.atomic():
            return Operation.objects.create(application=app, **fields)
    except IntegrityError:
        raise OperationInProgress(f"{app.name} already has an operation running") from None


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
    audit.record("operation.terminate", op, object_name=f"{op.kind} of {op.application.name}",
                 details={"operation": op.pk, "application": op.application.name,
                          "phase": op.phase})
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
            op = request_sync(app, user, revision=entry.sha, kind=Operation.Kind.ROLLBACK)
        audit.record("application.rollback", app, actor=user,
                     details={"mode": "pin", "sha": entry.sha, "history_entry": entry.pk,
                              "operation": op.pk})
        return op
    if mode == "git":
        if app.chart:
            raise ApplicationError(f"rollback in Git needs a Git source; {app.name} deploys "
                                   f"chart {app.chart} from {app.repository.url}: roll back "
                                   "with mode pin (it deploys that chart version)")
        branch = tracked_branch(app)
        author = _author(user)
        try:
            sha = repositories.repo_cache().revert_to(
                app.repository.url, branch, entry.sha,
                f"Roll back {app.name} to {entry.sha[:12]}\n\nRequested through GitOps UI by {author}.",
                author, repositories.credentials(app.repository))
        except SourceError as exc:
            raise ApplicationError(f"rollback in Git failed: {exc}") from None
        unpin(app, record=False)  # follow the branch again, which now holds the revert
        audit.record("application.rollback", app, actor=user,
                     details={"mode": "git", "sha": entry.sha, "history_entry": entry.pk,
                              "revert_commit": sha, "branch": branch})
        return sha
    raise ApplicationError(f"unknown rollback mode {mode!r} (pin or git)")


def unpin(app: Application, *, record: bool = True) -> None:
    """Follow the revision again; automated sync comes back on if a pinned rollback turned it off."""
    with transaction.atomic():
        Application.objects.filter(pk=app.pk, resume_automated=True).update(automated=True)
        Application.objects.filter(pk=app.pk).update(pinned_revision="", resume_automated=False)
    app.refresh_from_db(fields=["pinned_revision", "automated", "resume_automated"])
    if record:
        audit.record("application.unpin", app, details={"automated": app.automated})
    queueing.schedule_refresh_by_name(app.name)


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


def schedule_refresh(app: Application, *, hard: bool = False) -> None:
    """Refresh soon, as someone asked (API, page, admin): recorded in the audit log. Internal
    refreshes call queueing.schedule_refresh_by_name. `hard`: render the manifests again,
    fetching charts and Helm dependencies again, for what changed without a commit."""
    if hard:
        from .refreshing import hard_refresh_flag, mark_hard_refresh

        queueing.queue_once(hard_refresh_flag(app.name), "apps.applications.jobs.refresh",
                            app.name, True)
        with queue_errors("the hard refresh"):
            mark_hard_refresh(app.name)
        audit.record("application.refresh", app, details={"hard": True})
        return
    queueing.schedule_refresh_by_name(app.name)
    audit.record("application.refresh", app)


def reap_stale_operations() -> int:
    """Mark operations whose worker died as Error, so the app can sync again; queue again a
    recent Pending operation whose job vanished (Redis lost it). Returns how many were failed."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.GITOPS_UI_OPERATION_HEARTBEAT * 10 + 30)
    count = Operation.objects.filter(phase=Operation.Phase.RUNNING, heartbeat_at__lt=stale).update(
        phase=Operation.Phase.ERROR, finished_at=now,
        message="the worker running this operation stopped (no heartbeat); sync again to retry")
    lost = []
    queue = job_queue(queueing.SYNC_QUEUE)
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
                queueing.enqueue_operation(op)
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
