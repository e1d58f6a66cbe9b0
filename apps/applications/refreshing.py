"""Refreshing applications: compare Git with the cluster now, for the apps that are due, or for
the apps a push to a repository can move (with the already-handled shortcut of polling.py)."""
from __future__ import annotations

import uuid
import zlib
from contextlib import suppress
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from apps.core.queues import REDIS_DOWN, job_queue, redis_connection
from apps.repositories import services as repositories

from . import operations, queueing, reconcile
from .models import Application, Operation


DUE_REFRESH_CLAIM = 300  # seconds: longest a repository's periodic refresh job is waited for
# What a refresh reads besides the app, for many apps at once: prefetched, so each repository,
# cluster and project row is read and built once and shared by its apps (select_related built
# a copy for every app: 0.05 s for the 300 apps of one repository before the changed one's
# refresh could start, against 0.03 s).
RELATIONS = ("repository", "cluster", "project")
PICKED_BY = ("repository", "path", "revision", "pinned_revision", "chart")  # tracks_ref, changed_first


def hard_refresh_flag(app_name: str) -> str:
    # Its own flag: a hard refresh asked for is not merged into a plain one already queued.
    return queueing.refresh_flag(app_name) + ":hard"


def mark_hard_refresh(app_name: str) -> None:
    """Note in Redis that a hard refresh of the app was asked for, so that the web processes,
    which render for the diff view with their own cache, render again too (renders_outdated)."""
    redis_connection(queueing.SYNC_QUEUE).set(
        _hard_refresh_mark(app_name), uuid.uuid4().hex, ex=7 * 86400)


def renders_outdated(app_name: str) -> bool:
    """Whether a hard refresh of the app was asked for since this process last looked."""
    try:
        mark = redis_connection(queueing.SYNC_QUEUE).get(_hard_refresh_mark(app_name))
    except REDIS_DOWN:
        return False  # the diff view still works; at worst it shows the last render
    if mark is None or _hard_refresh_seen.get(app_name) == mark:
        return False
    _hard_refresh_seen[app_name] = mark
    return True


def _hard_refresh_mark(app_name: str) -> str:
    return f"gitops-ui:hard-refreshed:{app_name}"


_hard_refresh_seen: dict[str, bytes] = {}


def refresh_now(app: Application, hard: bool = False, cluster_change: bool = False,
                run_operation: bool = True) -> Operation | None:
    """Refresh in this process; an automated sync it calls for runs right away too, unless
    not `run_operation` (then it is only created). A failure, a bug included, ends up as a
    condition on the app (reconcile.refresh never raises).
    `hard`: render again, ignoring the renders of the same commit (rendering.forget_renders).
    `cluster_change`: a watch saw one of its objects change; Git is not asked again."""
    # Cleared first: a push arriving during this refresh must schedule another one.
    forget_refresh_requests(app.name, hard)
    op = reconcile.refresh(app, hard=hard, cluster_change=cluster_change)
    if op and run_operation:
        operations.run(op.pk, op)
    return op


def forget_refresh_requests(app_name: str, hard: bool = False) -> None:
    """Clear the flags that merge refresh requests of the app into the job already queued:
    that job is being handled now (it starts, or it is recorded as the "again" of the refresh
    running), so the next request must queue a job of its own."""
    with redis_connection(queueing.SYNC_QUEUE).pipeline(transaction=False) as pipe:
        pipe.delete(queueing.refresh_flag(app_name), *([hard_refresh_flag(app_name)] if hard else []))
        pipe.srem(queueing.CHANGED_APPS, app_name)  # what it reads covers those changes
        pipe.execute()
    queueing.started_refresh(app_name)  # after: a change seen meanwhile is in what it reads


def changed_apps() -> list[Application]:
    """A batch of the applications whose objects the watches saw change
    (queueing.take_changed_apps), looked up together; those whose changes a refresh has
    compared since are left out."""
    names = [name for name in queueing.take_changed_apps() if not _changes_compared(name)]
    if not names:
        return []
    return list(Application.objects.prefetch_related(*RELATIONS).filter(name__in=names))


def refresh_changed(app: Application) -> None:
    """Refresh an app whose objects changed, against the commit resolved last (no git call).
    An automated sync it calls for (self-heal) is queued as a job of its own: its health waits
    must not hold up the rest of the batch."""
    op = refresh_now(app, cluster_change=True, run_operation=False)
    if op:
        queueing.enqueue_operation(op)


def _changes_compared(app_name: str) -> bool:
    """Whether every change the watches saw to the app's objects was compared by a refresh
    that began after it (queueing.changes_compared): then its background refresh has nothing
    to do. A change seen from now on queues another."""
    if not queueing.changes_compared(app_name):
        return False
    queueing.started_refresh(app_name)
    # One seen before that was merged into this batch (LOCAL_MERGE): then it is refreshed.
    return queueing.changes_compared(app_name)


def forget_repository_refresh_request(repo_id: int, ref: str = "") -> None:
    """The same for a push's refresh of one repository and ref (refresh_repository)."""
    redis_connection(queueing.SYNC_QUEUE).delete(queueing.repository_refresh_flag(repo_id, ref))


def compare_now(app: Application) -> Application:
    """Refresh in this process without starting an automated sync: the app's status and
    per-resource differences, fresh (used by `app_diff`)."""
    reconcile.refresh(app, auto_sync=False)
    return app


def refresh_due() -> int:
    """Refresh, in this process, every application that is due (due_applications); return how
    many were refreshed. The reconciler runs schedule_due_refreshes instead."""
    to_refresh = due_applications()
    for op in reconcile.refresh_many(to_refresh):
        queueing.enqueue_operation(op)
    return len(to_refresh)


def _due_refresh_flag(repo_id: int) -> str:
    return f"gitops-ui:due-refresh-queued:{repo_id}"


def schedule_due_refreshes() -> int:
    """Queue the refresh of the due applications (due_applications): one background job per
    repository (refresh_due_repository), so a repository whose git server is slow or hangs
    holds up its own applications only, and the others are refreshed side by side. A
    repository whose job is still queued or running gets no second one. Runs every few
    seconds in the reconciler; returns how many jobs were queued."""
    by_repository: dict[int, list[int]] = {}
    for app in due_applications(only_ids=True):
        by_repository.setdefault(app.repository_id, []).append(app.pk)
    connection = redis_connection(queueing.SYNC_QUEUE)
    queued = 0
    for repo_id, app_ids in by_repository.items():
        flag = _due_refresh_flag(repo_id)
        if not connection.set(flag, 1, nx=True, ex=DUE_REFRESH_CLAIM):
            continue
        try:
            job_queue(queueing.BACKGROUND_QUEUE).enqueue(
                "apps.applications.jobs.refresh_due_repository", repo_id, app_ids, result_ttl=0)
        except REDIS_DOWN:
            with suppress(*REDIS_DOWN):
                connection.delete(flag)
            raise
        queued += 1
    return queued


def refresh_due_repository(repo_id: int, app_ids: list[int]) -> int:
    """Refresh these due applications of one repository (one ls-remote); their automated
    syncs are queued. Returns how many were refreshed."""
    try:
        apps = list(Application.objects.prefetch_related(*RELATIONS)
                    .filter(pk__in=app_ids, repository_id=repo_id))
        for op in reconcile.refresh_many(apps):
            queueing.enqueue_operation(op)
        return len(apps)
    finally:
        redis_connection(queueing.SYNC_QUEUE).delete(_due_refresh_flag(repo_id))


def due_applications(only_ids: bool = False) -> list[Application]:
    """The applications whose last refresh (never refreshed: their creation) is older than
    their interval, and those whose refresh failed on a cluster that answers again.
    `only_ids`: with only their ids and names
    loaded, for a caller that queues jobs by id every few seconds (each app's resources and
    conditions, and its repository's and cluster's rows with their secrets, are read by the
    job that refreshes it).

    Each app gets a stable extra delay of up to a tenth of the interval, so apps created together
    drift apart instead of being refreshed in one burst forever.

    Each cluster that has applications is also probed, once per pass: while it does not answer,
    its apps show it (sync and health Unknown, a ClusterError condition) instead of a stale
    "Synced", and are not refreshed; once it answers, the apps whose refresh failed on it are
    refreshed at once, so a commit pushed during the outage is applied within one pass.
    """
    interval = settings.GITOPS_UI_REFRESH_INTERVAL
    now = timezone.now()
    apps = Application.objects.prefetch_related(*RELATIONS)
    listed = (Application.objects.only("name", "reconciled_at", "created_at", "cluster_id",
                                       "repository_id")
              if only_ids else apps)
    # A new app's first refresh is the job queued when it was saved (services._refresh_soon):
    # taken here too, it would be refreshed twice during a first sync. Without that job (the
    # queue was down), it is due one interval after it was created.
    before = now - timedelta(seconds=interval)
    candidates = listed.filter(Q(reconciled_at__lt=before)
                               | Q(reconciled_at__isnull=True, created_at__lt=before))
    due = [a for a in candidates
           if (a.reconciled_at or a.created_at) + timedelta(seconds=interval * (1 + _jitter(a.name))) <= now]
    due_ids = [a.pk for a in due]
    down = reconcile.unreachable_clusters()
    # A condition of type ClusterError shows in the JSON text as "ClusterError", quotes included.
    failed_on_cluster = Q(conditions__icontains='"ClusterError"')
    for app in apps.filter(Q(cluster_id__in=down) & (~failed_on_cluster | Q(pk__in=due_ids))):
        reconcile.mark_unreachable(app, down[app.cluster_id])
    back = listed.filter(failed_on_cluster).exclude(cluster_id__in=down).exclude(pk__in=due_ids)
    return [a for a in due if a.cluster_id not in down] + list(back)


def _jitter(name: str) -> float:
    return zlib.crc32(name.encode()) % 1000 / 10000  # 0 to 0.1, the same for an app every time


def tracks_ref(app: Application, ref: str, default_branch: str = "") -> bool:
    """Whether a push to `ref` can move what `app` deploys. An app pinned to a commit, or whose
    revision is a commit sha, never moves; HEAD follows the default branch (any branch, when
    the sender does not say which is the default). A chart app has no Git to push to."""
    if app.chart:
        return False
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
    call to the git server (a fetch that lists the refs and brings their new commits), the
    apps whose manifests changed first, their automated syncs run at once. Returns how many
    apps were refreshed.

    A push of a commit already handled costs that call only (webhook floods, redeliveries,
    polling seeing what a webhook already refreshed). "Handled" (polling.Handled, per repository
    and ref, in Redis): the last time this ran for `ref`, the refs gave the same sha, every app
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

    forget_repository_refresh_request(repo_id, ref)
    redis = redis_connection(queueing.SYNC_QUEUE)
    # First only what picks the apps and orders them (tracks_ref, rendering.changed_first):
    # each row in full (~0.1 ms, and its status JSON is read by its own refresh) is read when
    # its batch comes, the changed apps' before the rest, ~0.02 s sooner at N=300.
    apps = [app for app in Application.objects.filter(repository_id=repo_id).only(*PICKED_BY)
            if tracks_ref(app, ref, default_branch)]
    read: list[Application] = []  # the apps refreshed, as their refreshes left them

    def in_full(batch: list[Application]) -> list[Application]:
        rows = (Application.objects.prefetch_related(*RELATIONS).defer(*reconcile.STATUS_JSON)
                .in_bulk([app.pk for app in batch]))
        full = [rows[app.pk] for app in batch if app.pk in rows]  # not those deleted meanwhile
        read.extend(full)
        return full

    if not ref or not apps:
        reconcile.refresh_many(in_full(apps), run_operation=lambda op: operations.run(op.pk, op))
        return len(apps)
    try:
        # One call to the git server that also fetches the pushed commit.
        refs = repositories.fetched_refs(apps[0].repository)
    except Exception as exc:  # as refresh_many would: shown on each app, nothing recorded
        for app in in_full(apps):
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
        # On the refs listed above: a push costs one call to the git server, not two.
        reconcile.refresh_listed(apps, refs, run_operation=lambda op: operations.run(op.pk, op),
                                 previous=(last.peeled or last.sha) if last is not None else "",
                                 in_full=in_full)
        # Only a failed refresh leaves sync Unknown (reconcile.record_failure).
        failed = tuple(sorted(app.pk for app in read if app.sync_status == "Unknown"))
        polling.record_handled(repo_id, ref, polling.Handled(now.sha, now.peeled, failed))
    finally:
        redis.delete(claim)
    return len(apps)
