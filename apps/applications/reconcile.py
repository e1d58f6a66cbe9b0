"""Refresh: Git revision → rendered manifests → comparison with the live cluster → app status.

Every failure becomes a condition on the application and keeps its last known sync and health:
an unreachable git server or cluster, a render error, an unknown kind. Nothing here applies
anything; automated syncs are decided here and run by operations.py.
"""
from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import shutil
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from threading import Lock

from django.conf import settings
from django.utils import timezone

from apps.clusters import services as clusters
from apps.core.events import group_for, publish
from apps.engine.diff import Comparison, IgnoreRule
from apps.engine.errors import ClusterError, EngineError, RenderError, SourceError
from apps.engine.source import (HelmSpec, KustomizeSpec, RenderTools, SourceSpec, detect_tool,
                                render)
from apps.repositories import services as repositories

from .models import Application, Operation

log = logging.getLogger(__name__)


@dataclass
class Desired:
    sha: str
    manifests: list[dict]


# --- rendering ---------------------------------------------------------------------------------
def render_tools() -> RenderTools:
    """kustomize and helm from GITOPS_UI_TOOLS_BIN, the Go-built cache of tools/cluster, or PATH."""
    found = {}
    cache = os.environ.get("GITOPS_UI_CACHE") or str(Path.home() / ".cache/gitops-ui")
    folders = [os.environ.get("GITOPS_UI_TOOLS_BIN", ""), os.environ.get("GITOPS_UI_CLUSTER_BIN", "")]
    folders += sorted(glob.glob(f"{cache}/cluster-*/bin"), key=os.path.getmtime, reverse=True)
    for tool in ("kustomize", "helm"):
        for folder in folders:
            if folder and os.access(Path(folder) / tool, os.X_OK):
                found[tool] = str(Path(folder) / tool)
                break
        else:
            found[tool] = shutil.which(tool) or tool
    return RenderTools(**found)


def source_spec(app: Application) -> SourceSpec:
    src = app.source or {}
    helm = src.get("helm") or {}
    kustomize = src.get("kustomize") or {}
    return SourceSpec(
        path=app.path or ".", tool=app.tool or None,
        include=src.get("include"), exclude=src.get("exclude"), recurse=src.get("recurse", True),
        helm=HelmSpec(release_name=helm.get("release_name") or app.name, namespace=app.namespace,
                      values_files=helm.get("values_files", []), values=helm.get("values", ""),
                      parameters=helm.get("parameters", {})),
        kustomize=KustomizeSpec(**{k: v for k, v in kustomize.items()
                                   if k in ("name_prefix", "name_suffix", "namespace", "images")}))


class _RenderMemo:
    """Rendered manifests per (repository, commit, source settings): a commit never changes."""

    def __init__(self, size: int = 512):
        self.size, self.items, self.lock = size, OrderedDict(), Lock()

    def contains(self, key) -> bool:
        return key in self.items

    def get_or_render(self, key, produce):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        value = produce()
        with self.lock:
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return value


_renders = _RenderMemo()


def desired_state(app: Application, known_refs: dict | None = None, sha: str | None = None) -> Desired:
    """Resolve the app's target revision and render it; SourceError or RenderError on failure."""
    sha = sha or repositories.resolve(app.repository, app.target_revision, known_refs)
    root = repositories.checkout(app.repository, sha)  # one export per commit, shared by apps
    spec = source_spec(app)
    return Desired(sha, _renders.get_or_render(
        render_key(app, root, sha), lambda: render(root, spec, render_tools(), namespace=app.namespace)))


def render_key(app: Application, root: Path, sha: str) -> tuple:
    """What the rendered manifests depend on. A plain directory depends only on its own files,
    so a commit elsewhere in the repository reuses the last render (and, the live state being
    the same, the last comparison). Kustomize and Helm may read outside their folder: per commit."""
    settings_key = hashlib.sha1(json.dumps([app.path, app.tool, app.source, app.name, app.namespace],
                                           sort_keys=True).encode()).hexdigest()
    folder = (root / (app.path or ".")).resolve()
    tool = app.tool or (detect_tool(folder) if folder.is_dir() else "directory")
    if tool != "directory" or not folder.is_dir() or not folder.is_relative_to(root.resolve()):
        return (app.repository.url, settings_key, "commit", sha)
    relative = str(folder.relative_to(root.resolve()))
    folders = repositories.repo_cache().folder_ids(app.repository.url, sha)
    return (app.repository.url, settings_key, "folder", folders.get("" if relative == "." else relative, sha))


def changed_first(apps: list[Application], known_refs: dict) -> list[Application]:
    """The apps whose manifests a new commit changes, ahead of those it leaves alone, so a
    webhook's change is applied before the many no-op refreshes of its neighbours."""
    def unchanged(app):
        try:
            sha = repositories.resolve(app.repository, app.target_revision, known_refs)
            return _renders.contains(render_key(app, repositories.checkout(app.repository, sha), sha))
        except EngineError:
            return False  # its refresh will record the error
    return sorted(apps, key=unchanged)


def ignore_rules(app: Application) -> list[IgnoreRule]:
    return [IgnoreRule(kind=r.get("kind", ""), group=r.get("group", ""), name=r.get("name", ""),
                       namespace=r.get("namespace", ""),
                       json_pointers=tuple(r.get("jsonPointers", [])))
            for r in app.ignore_differences or []]


def compare(app: Application, desired: Desired) -> Comparison:
    runtime = clusters.runtime(app.cluster)
    return runtime.comparator.compare(app.name, desired.manifests, app.namespace, ignore_rules(app))


# --- status ------------------------------------------------------------------------------------
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
    for name, value in fields.items():
        setattr(app, name, value)
    Application.objects.filter(pk=app.pk).update(**fields)
    if set(changed) - {"reconciled_at"}:
        publish(group_for("application", app.pk), {"type": "application.status",
                                                   **status_event(app)})


def status_event(app: Application) -> dict:
    return {"id": app.pk, "name": app.name, "sync": app.sync_status, "health": app.health_status,
            "target_sha": app.target_sha, "synced_sha": app.synced_sha,
            "conditions": app.conditions, "resources": app.resources}


# --- refresh -----------------------------------------------------------------------------------
def refresh(app: Application, known_refs: dict | None = None, auto_sync: bool = True
            ) -> Operation | None:
    """Compare the app with Git and the cluster, save its status; return an automated sync
    operation (created, not yet run) when the sync policy calls for one."""
    try:
        desired = desired_state(app, known_refs)
    except (SourceError, RenderError) as exc:
        save_status(app, sync_status="Unknown" if not app.target_sha else app.sync_status,
                    conditions=[condition("ComparisonError", str(exc))])
        return None
    try:
        comparison = compare(app, desired)
    except ClusterError as exc:
        save_status(app, target_sha=desired.sha, conditions=[condition("ClusterError", str(exc))])
        return None
    conditions = [condition("ComparisonError", e) for e in comparison.errors]
    save_status(app, target_sha=desired.sha, sync_status=comparison.sync,
                health_status=comparison.health, resources=resource_summary(comparison),
                conditions=conditions + _sync_conditions(app))
    if auto_sync and not comparison.errors:
        return _automated_sync(app, desired, comparison)
    return None


def _sync_conditions(app: Application) -> list[dict]:
    """A failed last operation stays visible until a later one succeeds."""
    last = app.operations.exclude(phase__in=Operation.ACTIVE).first()
    if last and last.phase in (Operation.Phase.FAILED, Operation.Phase.ERROR):
        return [condition("SyncError", last.message)]
    return []


def _automated_sync(app: Application, desired: Desired, comparison: Comparison) -> Operation | None:
    from .services import OperationInProgress, request_sync

    if not app.automated or app.pinned_revision or comparison.sync != "OutOfSync":
        return None
    if not desired.manifests and not app.allow_empty and any(
            r.requires_pruning for r in comparison.resources):
        save_status(app, conditions=app.conditions + [condition(
            "SyncError", "automated sync refused: Git renders no resources and allow-empty is off")])
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
        Operation.Phase.FAILED, Operation.Phase.ERROR]).order_by("-id")[:app.retry_limit + 1])
    if not failed:
        return True
    if len(failed) > app.retry_limit:
        return False
    backoff = timedelta(seconds=settings.GITOPS_UI_RETRY_BACKOFF * 2 ** (len(failed) - 1))
    return timezone.now() >= failed[0].finished_at + backoff


def refresh_many(apps: list[Application], run_operation=None) -> list[Operation]:
    """Refresh applications with one ls-remote per repository, changed ones first.

    Automated syncs are returned, or run at once by `run_operation(op)` when given (a webhook
    wants its change live before the other apps of the repository are looked at).
    """
    by_repo: dict[int, list[Application]] = {}
    for app in apps:
        by_repo.setdefault(app.repository_id, []).append(app)
    operations = []
    for group in by_repo.values():
        repo = group[0].repository
        try:
            refs = repositories.refs(repo)
        except SourceError as exc:
            for app in group:
                save_status(app, conditions=[condition("ComparisonError", str(exc))])
            continue
        for app in changed_first(group, refs):
            try:
                op = refresh(app, known_refs=refs)
            except EngineError as exc:  # one app's trouble never stops the others
                save_status(app, conditions=[condition("ComparisonError", str(exc))])
                continue
            except Exception:
                log.exception("refresh of %s failed", app.name)
                continue
            if op and run_operation:
                run_operation(op)
            elif op:
                operations.append(op)
    return operations
