"""Running a cascading deletion: the application's resources first, then the application.

What Argo CD's resources finalizer does. Every live object that carries the app's tracking
annotation is deleted with the propagation policy asked for (foreground: the API server removes
an object once its dependents are gone, a Deployment after its ReplicaSets and Pods; background:
at once, the garbage collector removes the dependents afterwards), highest sync wave first,
waiting for each wave to be gone, in reverse kind order inside a wave (as a prune). The
application row is deleted once they are all gone.

Kept, as Argo CD keeps them: objects annotated `argocd.argoproj.io/sync-options: Delete=false`
or `helm.sh/resource-policy: keep`, and CustomResourceDefinitions (deleting one would delete
every object of its kind, in every namespace). `Prune=false` only protects from pruning, as in
Argo CD. A namespace made by CreateNamespace carries no tracking annotation, so it stays too.

The deletion is an Operation of kind "delete", claimed and heart-beaten like a sync
(operations.py): no sync can start while it runs (one active operation per application), a
terminate request stops it between waves, and the reaper fails it if its worker dies. Anything
that stops it (cluster unreachable, a 403, an object still there after the timeout) keeps the
application, with a DeletionError condition naming the cause; deleting again carries on.

Not a SyncOperation prune: a prune skips Prune=false objects, always asks Foreground and goes
in ascending waves, none of which is right for a deletion. The engine's parts are reused: its
delete call, the watch cache (to find the objects and see them go) and its annotation readers.
"""
from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.clusters import services as clusters
from apps.core.events import group_for, publish
from apps.engine.errors import EngineError, ResourceError
from apps.engine.resources import annotations, group_of, kind_rank, sync_options, sync_wave
from apps.engine.sync import ResourceResult

from . import reconcile, rendering
from .models import Application, Operation
from .operations import claimed, publish_operation

log = logging.getLogger(__name__)
POLL_INTERVAL = 0.25
Phase = Operation.Phase


class _Stopped(Exception):
    """The deletion cannot go on; `phase` (Failed, Error, Terminated) and the message say why."""

    def __init__(self, phase: str, message: str):
        super().__init__(message)
        self.phase = phase


def run(operation_id: int) -> Operation | None:
    """Run one Pending delete operation; the operation, or None if it was not Pending (already
    run, running elsewhere, terminated before it started). On success the application and its
    operations are gone from the database; the returned operation lists what became of each
    resource."""
    with claimed(operation_id, Operation.Kind.DELETE) as (op, terminate):
        if op is None:
            return None
        try:
            _delete_resources(op, terminate)
            phase, message = Phase.SUCCEEDED, _summary(op)
        except _Stopped as stop:
            phase, message = stop.phase, str(stop)
        except Exception as exc:  # a bug: shown on the app, never a deletion stuck at Running
            log.exception("deletion of %s failed unexpectedly", op.application.name)
            phase, message = Phase.ERROR, reconcile.describe_unexpected(exc)
    op.phase, op.message, op.finished_at = phase, message, timezone.now()
    if phase == Phase.SUCCEEDED:
        _forget_application(op)
    else:
        _keep_application(op)
    return op


# --- the cluster side --------------------------------------------------------------------------
def _delete_resources(op: Operation, terminate: threading.Event) -> None:
    app = op.application
    propagation = op.options.get("cascade", "foreground").capitalize()  # Foreground, Background
    try:
        runtime = clusters.runtime(app.cluster)
        live = _tracked_objects(app, runtime)
    except EngineError as exc:  # unreachable, or a list refused (403)
        raise _Stopped(Phase.ERROR, _failed(app, exc)) from None
    results, doomed = {}, {}
    for key, obj in sorted(live.items()):
        results[key] = ResourceResult(key, "Delete", sync_wave(obj), "delete")
        reason = _kept_because(obj)
        if reason:
            results[key].status, results[key].message = "DeleteSkipped", reason
        else:
            doomed[key] = obj

    def progress(keys=(), status="", message=""):
        for key in keys:
            results[key].status, results[key].message = status, message
        op.resources = [r.as_dict() for r in results.values()]
        Operation.objects.filter(pk=op.pk).update(resources=op.resources)
        publish_operation(op)

    progress()
    for wave in sorted({sync_wave(obj) for obj in doomed.values()}, reverse=True):
        if terminate.is_set():
            raise _Stopped(Phase.TERMINATED, f"terminated by request; {_done(op)}; "
                                             f"{app.name} is kept")
        keys = sorted((k for k, obj in doomed.items() if sync_wave(obj) == wave),
                      key=lambda k: (-kind_rank(k.kind), k.namespace, k.name))
        for key in keys:
            try:
                runtime.cluster.delete(runtime.cluster.resource_of(doomed[key]),
                                       key.namespace or None, key.name, propagation=propagation)
            except EngineError as exc:  # unreachable, or a 403: this object may not be deleted
                progress([key], "DeleteFailed", str(exc))
                phase = Phase.FAILED if isinstance(exc, ResourceError) else Phase.ERROR
                raise _Stopped(phase, _failed(app, exc)) from None
        progress(keys, "Running", f"being deleted ({propagation.lower()})")
        _wait_gone(app, runtime, {k: doomed[k] for k in keys}, terminate)
        progress(keys, "Deleted", "deleted")


def _tracked_objects(app: Application, runtime) -> dict:
    """Every live object that carries the app's tracking annotation, read from the watch cache.
    The cache watches kinds on demand, so the kinds the app is known to have (its last resource
    list, and what its last rendered commit holds, hooks included) are watched first."""
    served = runtime.cluster.discover()
    kinds = {(r.get("group", ""), r.get("kind", "")) for r in app.resources or []}
    kinds |= _rendered_kinds(app)
    runtime.cache.ensure_watching([served[k] for k in kinds if k in served])
    return runtime.cache.tracked_by(app.name)


def _rendered_kinds(app: Application) -> set[tuple[str, str]]:
    if not app.target_sha:
        return set()
    try:  # rendered before by refreshes: usually a memo lookup in this process
        desired = rendering.desired_state(app, sha=app.target_sha)
    except Exception as exc:  # a deletion must not depend on Git: the resource list suffices
        log.info("deletion of %s goes without its rendered manifests: %s", app.name,
                 reconcile.describe_unexpected(exc) if not isinstance(exc, EngineError) else exc)
        return set()
    return {(group_of(o.get("apiVersion", "")), o.get("kind", "")) for o in desired.manifests}


def _kept_because(obj: dict) -> str:
    """Why Argo CD would leave this object when its application is deleted ("": delete it)."""
    if "Delete=false" in sync_options(obj):
        return "kept: the object says Delete=false"
    if annotations(obj).get("helm.sh/resource-policy") == "keep":
        return "kept: the object says helm.sh/resource-policy: keep"
    if obj.get("kind") == "CustomResourceDefinition":
        return "kept: a CustomResourceDefinition is never deleted with an application"
    return ""


def _wait_gone(app: Application, runtime, objs: dict, terminate: threading.Event) -> None:
    """Until every object of the wave is gone (its DELETED event reached the watch cache), at most
    GITOPS_UI_SYNC_HEALTH_TIMEOUT seconds, the bound a sync gives one wave."""
    timeout = settings.GITOPS_UI_SYNC_HEALTH_TIMEOUT
    deadline = time.monotonic() + timeout
    pending = set(objs)
    while pending:
        pending = {k for k in pending if runtime.cache.get(k) is not None}
        if not pending:
            return
        if terminate.is_set():
            raise _Stopped(Phase.TERMINATED, f"terminated by request while deleting; "
                                             f"{app.name} is kept")
        if time.monotonic() > deadline:
            try:  # the watch may lag behind: ask the API server before giving up
                pending = {k for k in pending if runtime.cluster.read(objs[k]) is not None}
            except EngineError as exc:
                raise _Stopped(Phase.ERROR, _failed(app, exc)) from None
            if pending:
                names = ", ".join(f"{k.kind} {k.name}" for k in sorted(pending)[:5])
                raise _Stopped(Phase.FAILED, _failed(
                    app, f"still present {timeout:.0f} s after being deleted: {names} "
                         f"(a finalizer that does not finish?)"))
            return
        time.sleep(POLL_INTERVAL)


def _failed(app: Application, cause) -> str:
    return f"deletion failed, {app.name} is kept: {cause}"


def _done(op: Operation) -> str:
    deleted = sum(r["status"] == "Deleted" for r in op.resources)
    return f"{deleted} of {len(op.resources)} resources deleted"


def _summary(op: Operation) -> str:
    deleted = sum(r["status"] == "Deleted" for r in op.resources)
    kept = sum(r["status"] == "DeleteSkipped" for r in op.resources)
    return (f"deleted {op.application.name} and {deleted} resources "
            f"({op.options.get('cascade', 'foreground')})" + (f"; {kept} kept" if kept else ""))


# --- the database side -------------------------------------------------------------------------
def _forget_application(op: Operation) -> None:
    app = op.application
    app_id, name = app.pk, app.name
    with transaction.atomic():
        app.delete()  # its operations and history go with it
    app.pk = app_id  # for the event and for whoever reads the returned operation
    clusters.runtime(app.cluster).comparator.forget(name)
    log.info("%s", op.message)
    publish(group_for("application", app_id), {
        "type": "application.deleted", "id": app_id, "name": name,
        "cascade": op.options.get("cascade"), "resources": op.resources})


def _keep_application(op: Operation) -> None:
    op.save(update_fields=["phase", "message", "finished_at", "resources"])
    app = op.application
    Application.objects.filter(pk=app.pk).update(deletion="")
    app.refresh_from_db(fields=["deletion", "conditions"])
    if op.phase in (Phase.FAILED, Phase.ERROR):
        log.warning("%s", op.message)
        others = [c for c in app.conditions or [] if c.get("type") != "DeletionError"]
        reconcile.save_status(app, conditions=others + [reconcile.condition("DeletionError",
                                                                            op.message)])
    publish_operation(op)
