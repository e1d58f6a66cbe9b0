"""Running one sync or rollback operation: claim it, sync, record the result and history.

An operation is claimed with a single conditional UPDATE (Pending → Running), so a job delivered
twice runs once. While it runs, a heartbeat thread stamps it and picks up terminate requests;
the reconciler marks operations whose heartbeat stopped (killed worker) as Error, so an app is
never left "Running".
"""
from __future__ import annotations

import copy
import logging
import threading
import time
from contextlib import contextmanager

from django.conf import settings
from django.db import connection
from django.utils import timezone

from apps.clusters import services as clusters
from apps.core.events import group_for, publish
from apps.engine.errors import EngineError
from apps.engine.resources import ResourceKey, group_of, key_of
from apps.engine.sync import SyncOperation, SyncOptions

from . import reconcile, rendering
from .models import Application, HistoryEntry, Operation

log = logging.getLogger(__name__)
HISTORY_LIMIT = 50
CACHE_CATCH_UP = 5.0  # seconds a finished sync waits at most for the watches to deliver what it wrote


@contextmanager
def claimed(operation_id: int, kind: str | None = None, created: Operation | None = None):
    """Claim a Pending operation (Pending → Running, one conditional UPDATE) and keep its
    heartbeat beating while the block runs. Yields (operation, terminate event), or
    (None, None) when it was not Pending: already run, running elsewhere, or terminated before
    it started. `created`: the operation as this thread just created it (an automated sync run
    at once), used instead of reading it back."""
    pending = Operation.objects.filter(pk=operation_id, phase=Operation.Phase.PENDING,
                                       **({"kind": kind} if kind else {}))
    now = timezone.now()
    if not pending.update(phase=Operation.Phase.RUNNING, started_at=now, heartbeat_at=now):
        yield None, None
        return
    if created is not None and created.pk == operation_id:
        # Its row holds what the object holds (the claim aside), its application was loaded
        # with its repository and cluster by the refresh that created it: reading them all
        # back cost a query and three rows' decoding per automated sync. Copies, so the
        # caller's objects do not change under it, as with objects read back.
        op, app = copy.copy(created), copy.copy(created.application)
        op.application = app
        op.phase, op.started_at, op.heartbeat_at = Operation.Phase.RUNNING, now, now
    else:
        op = Operation.objects.select_related("application__repository", "application__cluster",
                                              "initiated_by").get(pk=operation_id)
    publish_operation(op)
    terminate = threading.Event()
    beat = _Heartbeat(op.pk, terminate)
    beat.start()
    try:
        yield op, terminate
    finally:
        beat.stop()


def run(operation_id: int, created: Operation | None = None) -> Operation | None:
    """Run the operation; `created`: as claimed() takes it."""
    with claimed(operation_id, created=created) as (op, terminate):
        if op is None:
            return None
        try:
            phase, message, sha = _sync(op, terminate)
            expected = True
        except Exception as exc:  # record any bug on the operation rather than leave it Running
            log.exception("operation %s of %s failed unexpectedly", op.pk, op.application.name)
            phase, message, sha = Operation.Phase.ERROR, reconcile.describe_unexpected(exc), op.sha
            expected = False
    if expected and phase in (Operation.Phase.FAILED, Operation.Phase.ERROR):
        # One line with the cause; the message is the engine's, which never carries a secret.
        log.warning("%s of %s failed (operation %s, %s): %s", op.kind, op.application.name,
                    op.pk, phase, reconcile.log_line(message))
    op.phase, op.message, op.finished_at = phase, message, timezone.now()
    op.sha = sha or op.sha
    op.save(update_fields=["phase", "message", "finished_at", "sha", "resources"])
    app = op.application
    if phase == Operation.Phase.SUCCEEDED and not op.options.get("dry_run"):
        _record_history(app, op)
    publish_operation(op)
    from apps.notifications import services as notifications  # sync failed

    notifications.operation_finished(op)
    # One query for the app and what its refresh reads (not one for each, lazily).
    app.refresh_from_db(from_queryset=Application.objects.select_related(
        "repository", "cluster", "project"))
    # The commit just synced is the one to compare with; Git moving meanwhile is a push's or
    # the poller's to notice.
    reconcile.refresh(app, auto_sync=False, cluster_change=True)
    return op


def _sync(op: Operation, terminate: threading.Event) -> tuple[str, str, str]:
    app = op.application
    try:
        sha = op.sha or (rendering.resolve_revision(app, revision=op.revision) if op.revision
                         else None)  # a commit, or a chart version
        desired = rendering.desired_state(app, sha=sha)
    except EngineError as exc:
        return Operation.Phase.FAILED, str(exc), ""
    if desired.sha != op.sha:  # an automated sync was created with it
        Operation.objects.filter(pk=op.pk).update(sha=desired.sha)
    try:
        comparison = rendering.compare(app, desired)
        runtime = clusters.runtime(app.cluster)
    except EngineError as exc:  # unreachable cluster, or a read it refused (e.g. 403)
        return Operation.Phase.ERROR, str(exc), desired.sha
    if not desired.manifests and not app.allow_empty and op.automated:
        return Operation.Phase.FAILED, "Git renders no resources and allow-empty is off", desired.sha
    # For the history entry, from what this sync applies (no extra call to the cluster).
    op.deployed_images = deployed_images(desired.manifests, op.options.get("resources"))

    last_saved = [0.0]

    def progress(results):
        op.resources = [r.as_dict() for r in results]
        if time.monotonic() - last_saved[0] > 0.5:  # throttle writes; the final save has all
            last_saved[0] = time.monotonic()
            Operation.objects.filter(pk=op.pk).update(resources=op.resources)
            publish_operation(op)

    sync = SyncOperation(runtime.cluster, app.name, comparison, app.namespace,
                         _options(app, op), on_progress=progress, terminate=terminate)
    result = sync.run()
    op.resources = [r.as_dict() for r in result.resources]
    runtime.comparator.forget(app.name)
    rules = rendering.ignore_rules(app)
    for manifest, answer in sync.applied:
        runtime.comparator.remember_applied(manifest, answer, rules)
    # The refresh after the sync compares with the watch cache: once it holds what was written
    # (milliseconds), or it would show the app OutOfSync until the watch events' refresh.
    runtime.cache.wait_until_seen({key_of(answer): answer["metadata"].get("resourceVersion", "")
                                   for _, answer in sync.applied}, CACHE_CATCH_UP)
    if result.phase == "Succeeded" and not op.options.get("dry_run"):
        Application.objects.filter(pk=app.pk).update(synced_sha=desired.sha)
        app.synced_sha = desired.sha
    return result.phase, result.message, desired.sha


def _options(app: Application, op: Operation) -> SyncOptions:
    o = op.options
    selected = o.get("resources")
    return SyncOptions(
        prune=o.get("prune", app.prune), dry_run=o.get("dry_run", False),
        create_namespace=app.has_option("CreateNamespace=true"),
        # The sync dialog may ask for these once, on top of the app's own sync options.
        apply_out_of_sync_only=(o.get("apply_out_of_sync_only", False)
                                or app.has_option("ApplyOutOfSyncOnly=true")),
        prune_last=app.has_option("PruneLast=true"),
        replace=o.get("replace", False) or app.has_option("Replace=true"),
        resources={ResourceKey.parse(k) for k in selected} if selected else None,
        respect_ignore_differences=app.has_option("RespectIgnoreDifferences=true"),
        ignore_rules=tuple(rendering.ignore_rules(app)),
        health_timeout=settings.GITOPS_UI_SYNC_HEALTH_TIMEOUT)


def _record_history(app: Application, op: Operation) -> None:
    HistoryEntry.objects.create(
        application=app, operation=op, sha=op.sha, revision=op.revision or app.revision,
        source={"repository": app.repository.url, "path": app.path, "tool": app.tool,
                "source": app.source, **({"chart": app.chart} if app.chart else {})},
        deployed_by=op.initiator, images=getattr(op, "deployed_images", []))
    stale = list(app.history.values_list("pk", flat=True)[HISTORY_LIMIT:])
    if stale:  # a delete of nothing still costs a transaction
        HistoryEntry.objects.filter(pk__in=stale).delete()


# Where a kind keeps its Pod spec; any other kind's is at spec.template.spec (Deployment,
# StatefulSet, DaemonSet, ReplicaSet, Job, and workload CRDs shaped like them).
POD_SPEC_PATHS = {"Pod": ("spec",), "CronJob": ("spec", "jobTemplate", "spec", "template", "spec")}


def deployed_images(manifests: list[dict], selected: list[str] | None = None) -> list[str]:
    """The container images (containers and init containers) of the Pod specs in `manifests`,
    sorted and deduplicated; with `selected` (resource keys of a selective sync), only theirs."""
    picked = {(k.group, k.kind, k.name) for k in map(ResourceKey.parse, selected or [])}
    images = set()
    for manifest in manifests:
        kind, name = manifest.get("kind", ""), (manifest.get("metadata") or {}).get("name", "")
        if picked and (group_of(manifest.get("apiVersion", "")), kind, name) not in picked:
            continue
        pod_spec = manifest
        for step in POD_SPEC_PATHS.get(kind, ("spec", "template", "spec")):
            pod_spec = pod_spec.get(step) if isinstance(pod_spec, dict) else None
        if not isinstance(pod_spec, dict):
            continue
        for field in ("containers", "initContainers"):
            containers = pod_spec.get(field)
            for container in containers if isinstance(containers, list) else []:
                image = container.get("image") if isinstance(container, dict) else None
                if isinstance(image, str) and image.strip():
                    images.add(image.strip())
    return sorted(images)


def publish_operation(op: Operation) -> None:
    publish(group_for("application", op.application_id), {
        "type": "operation", "id": op.pk, "kind": op.kind, "phase": op.phase,
        "message": op.message, "sha": op.sha, "resources": op.resources})


class _Heartbeat(threading.Thread):
    def __init__(self, op_id: int, terminate: threading.Event):
        super().__init__(daemon=True, name=f"operation-{op_id}-heartbeat")
        self.op_id, self.terminate, self._stopped = op_id, terminate, threading.Event()

    def run(self):
        try:
            while not self._stopped.wait(settings.GITOPS_UI_OPERATION_HEARTBEAT):
                # One UPDATE per beat while no one asked to terminate (the usual case), which
                # also says whether someone did; a second only then.
                now = timezone.now()
                if not Operation.objects.filter(pk=self.op_id, terminate_requested=False).update(
                        heartbeat_at=now) and Operation.objects.filter(
                            pk=self.op_id, terminate_requested=True).update(heartbeat_at=now):
                    self.terminate.set()
        finally:
            connection.close()  # this thread's own connection

    def stop(self):
        self._stopped.set()
        self.join(5)
