"""Refresh: Git revision (or chart version) → rendered manifests → comparison with the live
cluster → app status.

Every failure becomes a condition on the application, a bug included: an unreachable git server
or cluster, a render error, an unknown kind, a TypeError. A comparison that could not be made
sets the sync status to Unknown (as Argo CD does) rather than keep a stale "Synced"; health
becomes Unknown too when the cluster cannot be reached. The last known resource list is kept, so
the user still sees what was deployed. Nothing here applies anything; automated syncs are
decided here and run by operations.py.
"""
from __future__ import annotations

import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from apps.clusters import services as clusters
from apps.clusters.models import Cluster
from apps.core.events import group_for, publish
from apps.engine.diff import Comparison
from apps.engine.errors import ClusterError, EngineError
from apps.repositories import services as repositories

from . import image_guard, queueing
from .rendering import (Desired, changed_first, compare, desired_state, forget_renders,
                      resolve_revision)
from .models import Application, Operation

log = logging.getLogger(__name__)


# --- status ------------------------------------------------------------------------------------
STATUS_JSON = ("resources", "conditions")  # an app's largest fields, written by every refresh
def condition(kind: str, message: str) -> dict:
    return {"type": kind, "message": message, "at": timezone.now().isoformat()}


def resource_summary(comparison: Comparison) -> list[dict]:
    rows = []
    for state in comparison.resources:
        rows.append({
            "group": state.key.group, "kind": state.key.kind, "namespace": state.key.namespace,
            "name": state.key.name, "status": state.sync,
            "health": state.health.status if state.health else "Unknown",
            "health_message": state.health.message if state.health else "",
            "requires_pruning": state.requires_pruning, "differences": state.differences[:50],
            "error": state.error or ""})
    return rows


def save_status(app: Application, **fields) -> None:
    fields["reconciled_at"] = timezone.now()
    changed = {k: v for k, v in fields.items() if getattr(app, k) != v}
    previous_health = app.health_status
    for name, value in fields.items():
        setattr(app, name, value)
    Application.objects.filter(pk=app.pk).update(**fields)
    if set(changed) - {"reconciled_at"}:
        publish(group_for("application", app.pk), {"type": "application.status",
                                                   **status_event(app)})
        from apps.notifications import services as notifications  # health degraded, deployed

        notifications.status_changed(app, previous_health)


def status_event(app: Application) -> dict:
    return {"id": app.pk, "name": app.name, "sync": app.sync_status, "health": app.health_status,
            "target_sha": app.target_sha, "synced_sha": app.synced_sha,
            "conditions": app.conditions, "resources": app.resources}


# --- failures ----------------------------------------------------------------------------------
_URL_CREDENTIALS = re.compile(r"(://)[^/@\s]+@")


def log_line(text: str, limit: int = 500) -> str:
    """`text` as one log line: whitespace and line breaks collapsed, shortened, credentials in
    URLs removed (tool output may quote a URL)."""
    line = " ".join(_URL_CREDENTIALS.sub(r"\1***@", str(text)).split())
    return line if len(line) <= limit else line[:limit] + "..."


def describe_unexpected(exc: Exception) -> str:
    """One line naming a bug's exception, fit for a condition and a log: first line, shortened,
    credentials in URLs removed."""
    lines = str(exc).strip().splitlines()
    text = _URL_CREDENTIALS.sub(r"\1***@", lines[0][:300]) if lines else ""
    return f"unexpected error: {type(exc).__name__}" + (f": {text}" if text else "")


def record_failure(app: Application, exc: Exception, target_sha: str = "") -> None:
    """Show why the app could not be compared. Sync becomes Unknown, health too when the cluster
    cannot be reached (the render failing leaves the live health known); the resource list
    stays. The reconcile time is set, so the app waits for its next turn instead of failing
    again every few seconds (refresh_due retries ClusterErrors once the cluster answers)."""
    fields = {"sync_status": "Unknown"}
    if target_sha:
        fields["target_sha"] = target_sha
    if isinstance(exc, ClusterError):
        kind, message = "ClusterError", str(exc)
        fields["health_status"] = "Unknown"
    elif isinstance(exc, EngineError):
        kind, message = "ComparisonError", str(exc)
    else:
        kind, message = "ComparisonError", describe_unexpected(exc)
    # One line, once per distinct cause (the condition is what the user reads), no traceback:
    # an expected failure (git, render, cluster) is a warning, a bug an error.
    already_known = any(c.get("message") == message for c in app.conditions or [])
    level = logging.WARNING if isinstance(exc, EngineError) else logging.ERROR
    log.log(logging.DEBUG if already_known else level, "refresh of %s failed: %s: %s",
            app.name, type(exc).__name__, log_line(message))
    try:
        save_status(app, conditions=[condition(kind, message)], **fields)
    except Exception as save_exc:  # e.g. the database is down: say so, go on
        log.error("cannot record the failed refresh of %s: %s", app.name,
                  describe_unexpected(save_exc))


# --- refresh -----------------------------------------------------------------------------------
def refresh(app: Application, known_refs: dict | None = None, auto_sync: bool = True,
            hard: bool = False, cluster_change: bool = False) -> Operation | None:
    """Compare the app with Git and the cluster, save its status; return an automated sync
    operation (created, not yet run) when the sync policy calls for one. Never raises: every
    failure is recorded on the app (record_failure). `hard`: render again (forget_renders).
    `cluster_change`: asked for by a change in the cluster, so the commit resolved last is
    compared again (resolve_revision's `recent`) without a call to the git server."""
    sha = ""
    began = time.monotonic()  # before the cache is read: what changed after is not compared
    deferred = app.get_deferred_fields()
    if deferred:  # one query for the status fields a caller left out (refresh_repository)
        app.refresh_from_db(fields=list(deferred))
    try:
        if hard:
            forget_renders(app)
        sha = resolve_revision(app, known_refs, recent=cluster_change and not hard)
        desired = desired_state(app, sha=sha)
        comparison = compare(app, desired)
        conditions = [condition("ComparisonError", e) for e in comparison.errors]
        _log_new_errors(app, comparison.errors)
        save_status(app, target_sha=desired.sha, sync_status=comparison.sync,
                    health_status=comparison.health, resources=resource_summary(comparison),
                    conditions=conditions + _sync_conditions(app)
                    + image_guard.conditions(app, desired.manifests, recheck=hard))
        if comparison.sync == "Synced" and not comparison.errors:
            # Only a Synced verdict settles the changes seen before it began: an app left
            # OutOfSync may still need the automated sync that a background refresh would start
            # (this refresh may not start one, or one in progress may have kept it from it).
            queueing.compared_cluster(app.name, began)
    except Exception as exc:  # a bug in one app's refresh is that app's condition
        record_failure(app, exc, target_sha=sha)  # the commit that failed, when known
        return None
    if not auto_sync or comparison.errors:
        return None
    try:
        return _automated_sync(app, desired, comparison)
    except Exception as exc:  # e.g. the project no longer allows the destination
        from .services import ApplicationError

        if isinstance(exc, ApplicationError):
            message = str(exc)
            log.warning("automated sync of %s could not start: %s", app.name, log_line(message))
        else:
            message = describe_unexpected(exc)
            log.error("automated sync of %s could not start: %s", app.name, message)
        save_status(app, conditions=app.conditions + [condition(
            "SyncError", f"automated sync could not start: {message}")])
        return None


def _log_new_errors(app: Application, errors: list[str]) -> None:
    """Comparison errors (a kind the cluster does not serve, a manifest the API server rejects)
    logged once each, when they first appear among the app's conditions."""
    known = {c.get("message") for c in app.conditions or []}
    for error in errors:
        if error not in known:
            log.warning("comparison of %s failed: %s", app.name, log_line(error))


def _sync_conditions(app: Application) -> list[dict]:
    """A failed last operation stays visible until a later one succeeds."""
    # Only what is read here (and the application, which the related manager reads): not the
    # resources and options (JSON) of the last sync at every refresh.
    last = app.operations.exclude(phase__in=Operation.ACTIVE).only(
        "application", "phase", "kind", "message").first()
    if last and last.phase in (Operation.Phase.FAILED, Operation.Phase.ERROR):
        kind = "DeletionError" if last.kind == Operation.Kind.DELETE else "SyncError"
        return [condition(kind, last.message)]
    return []


def _automated_sync(app: Application, desired: Desired, comparison: Comparison) -> Operation | None:
    from .services import OperationInProgress, request_sync

    if not app.automated or app.pinned_revision or comparison.sync != "OutOfSync":
        return None
    if image_guard.blocks_automated_sync(app):  # the MissingImage condition says so
        return None
    if not app.prune and all(r.requires_pruning for r in comparison.out_of_sync()):
        # As Argo CD: only pruning would do anything and automated prune is off, so no sync
        # runs (it would report success while the app stays OutOfSync); the resources show
        # requires_pruning.
        return None
    if not desired.manifests and not app.allow_empty and any(
            r.requires_pruning for r in comparison.resources):
        message = "automated sync refused: Git renders no resources and allow-empty is off"
        if not any(c.get("message") == message for c in app.conditions or []):
            log.warning("%s: %s", app.name, message)
        save_status(app, conditions=app.conditions + [condition("SyncError", message)])
        return None
    new_revision = desired.sha != app.synced_sha
    if not new_revision and not app.self_heal:
        return None  # drift without self-heal: shown, not undone
    if not _retry_allowed(app, desired.sha):
        return None
    try:
        return request_sync(app, user=None, automated=True, revision=desired.sha,
                            prune=app.prune, enqueue=False)
    except OperationInProgress:
        return None


def _retry_allowed(app: Application, sha: str) -> bool:
    """Never loop on a revision that failed: retry_limit more tries, with doubling backoff."""
    failed = list(app.operations.filter(automated=True, sha=sha, phase__in=[
        Operation.Phase.FAILED, Operation.Phase.ERROR]).order_by("-id").values_list(
            "finished_at", flat=True)[:app.retry_limit + 1])
    if not failed:
        return True
    if len(failed) > app.retry_limit:
        return False
    backoff = timedelta(seconds=settings.GITOPS_UI_RETRY_BACKOFF * 2 ** (len(failed) - 1))
    return timezone.now() >= failed[0] + backoff


def unreachable_clusters() -> dict[int, str]:
    """Cluster id -> why it cannot be reached, for each cluster with applications that does not
    answer right now. One short probe per cluster, all at once: a dead cluster costs one timeout."""
    records = list(Cluster.objects.filter(applications__isnull=False).distinct())
    if not records:
        return {}
    with ThreadPoolExecutor(max_workers=min(8, len(records))) as pool:
        reasons = list(pool.map(clusters.unreachable, records))
    return {record.pk: why for record, why in zip(records, reasons) if why}


def mark_unreachable(app: Application, why: str) -> None:
    """Show at once that the app's cluster does not answer, without a refresh that would fail."""
    record_failure(app, ClusterError(why))


def refresh_many(apps: list[Application], run_operation=None) -> list[Operation]:
    """Refresh applications with one ls-remote per repository, changed ones first.

    Automated syncs are returned, or run at once by `run_operation(op)` when given (a webhook
    wants its change live before the other apps of the repository are looked at).
    """
    by_repo: dict[int, list[Application]] = {}
    operations = []
    for app in apps:
        if app.chart:  # no Git: its refresh reads the chart repository's versions
            op = refresh(app)
            if op and run_operation:
                run_operation(op)
            elif op:
                operations.append(op)
            continue
        by_repo.setdefault(app.repository_id, []).append(app)
    for group in by_repo.values():
        repo = group[0].repository
        try:
            refs = repositories.refs(repo)
        except Exception as exc:  # shown on each app of the repository
            for app in group:
                record_failure(app, exc)
            continue
        operations += refresh_listed(group, refs, run_operation)
    return operations


def refresh_listed(apps: list[Application], refs: dict, run_operation=None,
                   previous: str = "", in_full=None) -> list[Operation]:
    """Refresh applications of one repository against refs already listed, changed ones
    first (since commit `previous` when given); automated syncs returned, or run at once by
    `run_operation(op)`. `in_full`: for apps read in part (rendering.changed_first)."""
    operations = []
    for batch in changed_first(apps, refs, previous, in_full):
        for app in batch:
            op = refresh(app, known_refs=refs)  # one app's trouble never stops the others
            if op and run_operation:
                run_operation(op)
            elif op:
                operations.append(op)
    return operations
