"""What an application should look like: its revision (or chart version) resolved, its source
rendered into manifests (renders remembered per commit and settings), and the comparison of
those with the live cluster. Used by refresh (reconcile.py), operations, and the pages."""
from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import shutil
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from threading import Lock


from apps.clusters import services as clusters
from apps.engine.diff import Comparison, IgnoreRule
from apps.engine.source import (HelmSpec, JsonnetSpec, JsonnetVar, KustomizeSpec, RenderTools,
                                SourceSpec, detect_tool, export_paths, render)
from apps.engine.source import chart as charts
from apps.engine.source import helm_deps
from apps.repositories import services as repositories

from .models import Application

log = logging.getLogger(__name__)


@dataclass
class Desired:
    sha: str  # the commit, or for a chart the version resolved
    manifests: list[dict]


# --- rendering ---------------------------------------------------------------------------------
def render_tools() -> RenderTools:
    """kustomize, helm and jsonnet from GITOPS_UI_TOOLS_BIN, the Go-built cache of tools/cluster,
    or PATH."""
    found = {}
    cache = os.environ.get("GITOPS_UI_CACHE") or str(Path.home() / ".cache/gitops-ui")
    folders = [os.environ.get("GITOPS_UI_TOOLS_BIN", ""), os.environ.get("GITOPS_UI_CLUSTER_BIN", "")]
    folders += sorted(glob.glob(f"{cache}/cluster-*/bin"), key=os.path.getmtime, reverse=True)
    for tool in ("kustomize", "helm", "jsonnet"):
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
    jsonnet = src.get("jsonnet") or {}
    return SourceSpec(
        path=app.path or ".", tool=app.tool or None,
        include=src.get("include"), exclude=src.get("exclude"), recurse=src.get("recurse", True),
        helm=HelmSpec(release_name=helm.get("release_name") or app.name, namespace=app.namespace,
                      values_files=helm.get("values_files", []), values=helm.get("values", ""),
                      parameters=helm.get("parameters", {}),
                      string_parameters=helm.get("string_parameters", {})),
        kustomize=KustomizeSpec(**{k: v for k, v in kustomize.items()
                                   if k in ("name_prefix", "name_suffix", "namespace", "images")}),
        jsonnet=JsonnetSpec(tlas=[JsonnetVar(**v) for v in jsonnet.get("tlas", [])],
                            ext_vars=[JsonnetVar(**v) for v in jsonnet.get("ext_vars", [])],
                            libs=jsonnet.get("libs", [])))


class _RenderMemo:
    """Rendered manifests per (repository, commit, source settings): a commit never changes.
    (Also the detected tool per folder tree: the same content, the same tool.)"""

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

    def drop(self, matches) -> int:
        """Forget the entries whose key `matches`; how many."""
        with self.lock:
            gone = [key for key in self.items if matches(key)]
            for key in gone:
                del self.items[key]
        return len(gone)


_renders = _RenderMemo()
_detected_tools = _RenderMemo(size=4096)


def chart_source(app: Application) -> charts.ChartSource:
    repo = app.repository
    return charts.ChartSource(repo.url, app.chart, repo.username, repo.password)


def resolve_revision(app: Application, known_refs: dict | None = None,
                     revision: str | None = None, recent: bool = False) -> str:
    """The commit `revision` (the app's target revision by default) is at, or for a chart app
    the version it resolves to in the chart's repository (a range: the newest that fits, read
    again at each refresh, so a new release is picked up).

    `recent`: the commit this process last resolved for the app's source, if it did within
    RECENT_REVISION_SECONDS, without asking the git server. For refreshes that a change in the
    cluster asked for (as Argo CD's CompareWithRecent): Git moving is noticed by pushes and
    polling, which resolve again."""
    # An app's first refresh (its own target revision) was asked for when the app was created:
    # the git server's answer to a call made since then (for another new app) is fresh enough.
    since = app.created_at.timestamp() + CLOCK_MARGIN \
        if revision is None and app.reconciled_at is None and app.created_at else None
    revision = app.target_revision if revision is None else revision
    source = (app.repository_id, app.repository.url, app.chart, revision)
    if recent:
        remembered = _recent_revisions.get(app.pk)
        if remembered and remembered[0] == source \
                and time.monotonic() - remembered[2] < RECENT_REVISION_SECONDS:
            return remembered[1]
    if app.chart:
        sha = charts.resolve(chart_source(app), revision, render_tools())
    else:
        sha = repositories.resolve(app.repository, revision, known_refs, since=since)
    if revision == app.target_revision:
        _recent_revisions[app.pk] = (source, sha, time.monotonic())
    return sha


RECENT_REVISION_SECONDS = 300  # beyond the periodic refresh (180 s), which resolves again
CLOCK_MARGIN = 1.0  # seconds: the web server that created the app may run on another clock
_recent_revisions: dict[int, tuple[tuple, str, float]] = {}


def desired_state(app: Application, known_refs: dict | None = None, sha: str | None = None) -> Desired:
    """Resolve the app's target revision and render it; SourceError or RenderError on failure.
    For a chart app `sha` is the chart version."""
    sha = sha or resolve_revision(app, known_refs)
    if app.chart:
        return Desired(sha, _renders.get_or_render(chart_render_key(app, sha), lambda: (
            charts.render_chart(chart_source(app), sha, source_spec(app), render_tools(),
                                namespace=app.namespace))))
    spec = source_spec(app)
    # Only the folders this render reads (its path and what its files refer to), not the commit.
    root = repositories.checkout(app.repository, sha, export_paths(spec))
    return Desired(sha, _renders.get_or_render(
        render_key(app, root, sha), lambda: render(root, spec, render_tools(), namespace=app.namespace)))


def chart_render_key(app: Application, version: str) -> tuple:
    return (app.repository.url, _chart_settings_key(app), "chart", app.chart, version)


def _chart_settings_key(app: Application) -> str:
    return hashlib.sha1(json.dumps([app.source, app.name, app.namespace],
                                   sort_keys=True).encode()).hexdigest()


def _source_settings_key(app: Application) -> str:
    return hashlib.sha1(json.dumps([app.path, app.tool, app.source, app.name, app.namespace],
                                   sort_keys=True).encode()).hexdigest()


def forget_renders(app: Application) -> None:
    """For a hard refresh: the app's next render runs again, its chart and Helm dependencies
    fetched again, instead of reusing what was rendered for the same commit or chart version.
    That is how a change made without a commit shows (a chart or dependency re-published under
    the same version, a newer release within an unlocked dependency's range). The fetched charts
    are kept per repository and version, not per app: those of every app are fetched again."""
    mine = {(app.repository.url, _chart_settings_key(app)),
            (app.repository.url, _source_settings_key(app))}
    _renders.drop(lambda key: key[:2] in mine)
    charts.forget()
    helm_deps.forget()


def render_key(app: Application, root: Path, sha: str) -> tuple:
    """What the rendered manifests depend on. A plain directory depends only on its own files,
    so a commit elsewhere in the repository reuses the last render (and, the live state being
    the same, the last comparison). Kustomize and Helm may read outside their folder: per commit."""
    settings_key = _source_settings_key(app)
    folder = (root / (app.path or ".")).resolve()
    if not folder.is_dir() or not folder.is_relative_to(root.resolve()):
        return (app.repository.url, settings_key, "commit", sha)
    relative = str(folder.relative_to(root.resolve()))
    folders = repositories.repo_cache().folder_ids(app.repository.url, sha)
    tree = folders.get("" if relative == "." else relative, sha)
    # Detecting Jsonnet walks the folder: once per folder content (its git tree id).
    tool = app.tool or _detected_tools.get_or_render((app.repository.url, tree),
                                                     lambda: detect_tool(folder))
    if tool != "directory":
        return (app.repository.url, settings_key, "commit", sha)
    return (app.repository.url, settings_key, "folder", tree)


DIFF_FROM_APPS = 20  # fewer apps: looking at each one's render is cheaper than a git call


def changed_first(apps: list[Application], known_refs: dict, previous: str = "",
                  in_full=None) -> Iterator[list[Application]]:
    """The apps in batches, those whose manifests a new commit changes ahead of those it leaves
    alone, so a webhook's change is applied before the many no-op refreshes of its neighbours.

    With `previous` (the commit the apps were last refreshed at), the apps whose folder holds a
    file that differs come first: one `git diff-tree`, not a look at every app's render (which
    costs ~0.3 ms per app before the first change is applied). An app that reads a changed
    file outside its folder (a Kustomize base) is then refreshed with the rest, only later.

    `in_full(apps)`: the same apps read in full, for `apps` that hold only what picking them
    needs (path, revision, chart: refreshing.refresh_repository); each batch is read
    when it is reached, the changed apps' rows before the others'."""
    in_full = in_full or (lambda batch: batch)
    first = apps[0] if apps else None
    if previous and len(apps) > DIFF_FROM_APPS and not first.chart:
        try:
            new = repositories.resolve(first.repository, first.target_revision, known_refs)
            changed = repositories.changed_files(first.repository, previous, new)
        except Exception:  # the refreshes themselves record what is wrong
            changed = None
        if changed is not None:
            hit, rest = [], []
            for app in apps:
                (hit if _holds_any(app.path, changed) else rest).append(app)
            yield in_full(hit)
            yield in_full(rest)
            return

    def unchanged(app):
        if app.chart:
            return False
        try:
            sha = repositories.resolve(app.repository, app.target_revision, known_refs)
            root = repositories.checkout(app.repository, sha, export_paths(source_spec(app)))
            return _renders.contains(render_key(app, root, sha))
        except Exception:  # its refresh records the error, a bug included
            return False
    yield sorted(in_full(apps), key=unchanged)


def _holds_any(folder: str, paths: list[str]) -> bool:
    folder = folder.strip("/")
    if folder in ("", "."):
        return bool(paths)
    return any(p == folder or p.startswith(folder + "/") for p in paths)


def ignore_rules(app: Application) -> list[IgnoreRule]:
    """The app's ignoreDifferences (validated by spec.py) as the engine takes them."""
    return [IgnoreRule(kind=r.get("kind", ""), group=r.get("group", ""), name=r.get("name", ""),
                       namespace=r.get("namespace", ""),
                       json_pointers=tuple(r.get("jsonPointers") or ()),
                       jq_path_expressions=tuple(r.get("jqPathExpressions") or ()),
                       managed_fields_managers=tuple(r.get("managedFieldsManagers") or ()))
            for r in app.ignore_differences or []]


def compare(app: Application, desired: Desired) -> Comparison:
    runtime = clusters.runtime(app.cluster)
    return runtime.comparator.compare(app.name, desired.manifests, app.namespace, ignore_rules(app))
