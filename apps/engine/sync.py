"""Sync: make the cluster match a Comparison, in phases and waves, with hooks and prune.

Order, as Argo CD users expect it:
  1. every object to apply is dry-run first; one rejection fails the sync before anything is
     applied ("nothing half-applied"). Except in one case, where the dry run protects nothing:
     a sync of one step (one wave, no hook) into a namespace it has just created. Its objects are
     all new and nothing runs before them, so they are applied at once (half the requests of a
     new application's first sync), and if the server refuses one, those already created are
     deleted again: nothing is left half-applied either way;
  2. phases PreSync → Sync → PostSync; inside a phase, waves in ascending order
     (`argocd.argoproj.io/sync-wave`, negative allowed), and inside a wave kinds in dependency
     order (namespaces and CRDs first);
  3. after a wave is applied, the next one starts only when the wave is healthy (hooks: their
     Job/Pod finished);
  4. objects no longer in Git are pruned in their wave (or after the last one with PruneLast),
     unless pruning is off or the object says `Prune=false`;
  5. on failure, SyncFail hooks run.
A terminate request is honoured between steps.
"""
from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from .cluster import Cluster
from .diff import OUT_OF_SYNC, Comparison, ResourceState, write
from .errors import ClusterError, EngineError, ResourceError
from .health import assess
from .ignore import keep_live_values
from .resources import (HOOK_LABEL, ResourceKey, defined_kinds, group_of, hook_delete_policies,
                        hook_label_value, hook_types, key_of, kind_rank, sync_options, sync_wave,
                        with_tracking)

PHASES = ("PreSync", "Sync", "PostSync")
SUCCEEDED, FAILED, ERROR, TERMINATED, RUNNING = "Succeeded", "Failed", "Error", "Terminated", "Running"


@dataclass
class SyncOptions:
    prune: bool = False
    dry_run: bool = False
    create_namespace: bool = False
    apply_out_of_sync_only: bool = False
    prune_last: bool = False
    replace: bool = False
    resources: set[ResourceKey] | None = None  # selective sync: only these
    # Argo CD's RespectIgnoreDifferences=true: what these rules ignore is applied as live has it.
    respect_ignore_differences: bool = False
    ignore_rules: tuple = ()  # IgnoreRule
    health_timeout: float = 300.0  # per wave
    poll_interval: float = 0.25


@dataclass
class ResourceResult:
    key: ResourceKey
    phase: str
    wave: int
    action: str  # apply, prune, hook, create-namespace
    status: str = "Pending"  # Synced, SyncFailed, Pruned, PruneSkipped, Running, Succeeded, Failed
    message: str = ""

    def as_dict(self) -> dict:
        return {"key": str(self.key), "group": self.key.group, "kind": self.key.kind,
                "namespace": self.key.namespace, "name": self.key.name, "phase": self.phase,
                "wave": self.wave, "action": self.action, "status": self.status,
                "message": self.message}


@dataclass
class SyncResult:
    phase: str
    message: str
    resources: list[ResourceResult] = field(default_factory=list)


@dataclass
class _Task:
    phase: str
    wave: int
    action: str
    obj: dict
    result: ResourceResult
    live_name: str | None = None  # a hook's real name after generateName

    @property
    def order(self):
        key = self.result.key
        rank = kind_rank(key.kind)
        return (self.wave, -rank if self.action == "prune" else rank, key.namespace, key.name)


class SyncFailed(EngineError):
    pass


class Terminated(EngineError):
    pass


class SyncOperation:
    def __init__(self, cluster: Cluster, app: str, comparison: Comparison, namespace: str,
                 options: SyncOptions | None = None,
                 on_progress: Callable[[list[ResourceResult]], None] | None = None,
                 terminate: threading.Event | None = None):
        self.cluster, self.app, self.comparison = cluster, app, comparison
        self.namespace = namespace
        self.options = options or SyncOptions()
        self.on_progress = on_progress
        self.terminate = terminate or threading.Event()
        self.results: list[ResourceResult] = []
        self.applied: list[tuple[dict, dict]] = []  # (manifest, the server's answer)
        self.unchecked: set[ResourceKey] = set()  # applied without a dry run first (see above)
        # Kinds whose CustomResourceDefinition this sync applies: not served before it runs.
        self.defined_kinds = defined_kinds(r.desired for r in comparison.resources if r.desired)

    # --- entry point --------------------------------------------------------------------------
    def run(self) -> SyncResult:
        if self.comparison.errors:
            return SyncResult(FAILED, "comparison failed: " + "; ".join(self.comparison.errors))
        tasks, sync_fail_hooks = self._plan()
        try:
            # The destination namespace first, as Argo CD does: only then can the API server
            # check the objects that go into it (before, it only answers "namespace not found").
            for task in tasks:
                if task.action == "create-namespace" and not self.options.dry_run:
                    self._run_task(task)
            self._dry_run(tasks)
            if self.options.dry_run:
                for task in tasks:
                    task.result.status, task.result.message = "Synced", "dry run"
                return SyncResult(SUCCEEDED, "dry run: every object was accepted", self.results)
            self._execute(tasks)
        except Terminated:
            return SyncResult(TERMINATED, "terminated by request", self.results)
        except (SyncFailed, ResourceError) as exc:
            undone = self._undo_unchecked()
            self._run_sync_fail_hooks(sync_fail_hooks)
            return SyncResult(FAILED, str(exc) + undone, self.results)
        except ClusterError as exc:
            return SyncResult(ERROR, str(exc), self.results)
        pruned = sum(r.status == "Pruned" for r in self.results)
        applied = sum(r.action == "apply" and r.status == "Synced" for r in self.results)
        return SyncResult(SUCCEEDED, f"successfully synced ({applied} applied, {pruned} pruned)",
                          self.results)

    # --- planning -----------------------------------------------------------------------------
    def _plan(self) -> tuple[list[_Task], list[dict]]:
        tasks: list[_Task] = []
        opts = self.options
        selected = (lambda key: key in opts.resources) if opts.resources is not None else (lambda key: True)

        if opts.create_namespace and self.namespace:
            ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}}
            if self.cluster.read(ns) is None:
                tasks.append(self._task("PreSync", -10**9, "create-namespace", ns))

        for state in self.comparison.resources:
            if not selected(state.key):
                continue
            if state.requires_pruning:
                tasks.append(self._prune_task(state))
            elif not (opts.apply_out_of_sync_only and state.sync != OUT_OF_SYNC):
                tasks.append(self._task("Sync", sync_wave(state.desired), "apply",
                                        self._to_apply(state)))

        sync_fail = []
        for hook in self.comparison.hooks:
            for phase in hook_types(hook):
                if phase == "SyncFail":
                    sync_fail.append(hook)
                elif opts.resources is None:  # selective sync runs no hooks (as Argo CD)
                    tasks.append(self._task(phase, sync_wave(hook), "hook", hook))
        return tasks, sync_fail

    def _to_apply(self, state: ResourceState) -> dict:
        """The manifest to apply; with RespectIgnoreDifferences, ignored fields of an existing
        object as live has them (a new object is applied as Git has it, as in Argo CD)."""
        rules = [r for r in self.options.ignore_rules if r.matches(state.key)]
        if not (self.options.respect_ignore_differences and rules and state.live):
            return state.desired
        return keep_live_values(state.desired, state.live, rules)

    def _task(self, phase, wave, action, obj) -> _Task:
        result = ResourceResult(key_of(obj), phase, wave, action)
        self.results.append(result)
        return _Task(phase, wave, action, obj, result)

    def _prune_task(self, state: ResourceState) -> _Task:
        live = state.live
        wave = sync_wave(live)
        options = sync_options(live)
        if self.options.prune_last or "PruneLast=true" in options:
            wave = 10**9
        task = self._task("Sync", wave, "prune", live)
        if not self.options.prune:
            task.result.status, task.result.message = "PruneSkipped", "pruning is off for this sync"
        elif "Prune=false" in options or "Delete=false" in options:
            task.result.status, task.result.message = "PruneSkipped", "the object says Prune=false"
        return task

    # --- dry run ------------------------------------------------------------------------------
    def _dry_run(self, tasks: list[_Task]) -> None:
        created_namespaces = {t.result.key.name for t in tasks if t.result.key.kind == "Namespace"
                              and t.action != "prune" and t.result.status != "Synced"}
        created_kinds = defined_kinds(t.obj for t in tasks if t.action == "apply")
        # The comparison just ran the same dry run for each resource it could; only the rest
        # (hooks, objects whose namespace or CRD did not exist then) are checked here.
        checked = {s.key for s in self.comparison.resources if s.predicted is not None}
        one_step = len(self._steps(tasks)) == 1 and not any(t.action == "hook" for t in tasks)
        fresh = {t.result.key.name for t in tasks if t.action == "create-namespace"
                 and t.result.status == "Synced"} if one_step else set()
        failures = []
        for task in sorted(tasks, key=lambda t: t.order):
            if task.action not in ("apply", "hook"):
                continue
            key = task.result.key
            if task.action == "apply" and key in checked and not self.options.replace:
                continue
            if task.action == "apply" and key.namespace in fresh:
                self.unchecked.add(key)
                continue
            if key.namespace in created_namespaces or (key.group, key.kind) in created_kinds:
                continue  # cannot be checked before its namespace or CRD exists
            if "SkipDryRunOnMissingResource=true" in sync_options(task.obj):
                continue
            if task.action == "hook" and self._exists(task.obj):
                continue  # replaced by a fresh run (BeforeHookCreation); an update would clash
            try:
                self._write(task, dry_run=True)
            except ResourceError as exc:
                task.result.status, task.result.message = "SyncFailed", str(exc)
                failures.append(str(exc))
        if failures:
            self._progress()
            raise SyncFailed("the API server rejected the manifests; nothing was applied: "
                             + "; ".join(failures))

    def _undo_unchecked(self) -> str:
        """After a refusal, delete the objects applied unchecked (all new, in a namespace this
        sync created); what to add to the sync's message."""
        undone = 0
        for obj, _ in self.applied:
            key = key_of(obj)
            if key not in self.unchecked:
                continue
            result = next(r for r in self.results if r.key == key)
            try:
                self.cluster.delete(self.cluster.resource_of(obj), key.namespace, key.name,
                                    propagation="Background")
            except (ClusterError, ResourceError) as exc:
                result.message = f"applied; deleting it again after the failure failed: {exc}"
                continue
            result.status, result.message = "SyncFailed", "created, then deleted again: the sync failed"
            undone += 1
        if not undone:
            return ""
        self._progress()
        return (f"; nothing is left applied: the {undone} object(s) created before it in the new "
                f"namespace were deleted again")

    def _exists(self, obj: dict) -> bool:
        return bool(obj["metadata"].get("name")) and self.cluster.read(obj) is not None

    # --- execution ----------------------------------------------------------------------------
    @staticmethod
    def _steps(tasks: list[_Task]) -> list[list[_Task]]:
        """What runs, in order: a step per phase and wave, each in kind order."""
        steps = []
        for phase in PHASES:
            phase_tasks = [t for t in tasks if t.phase == phase
                           and t.result.status not in ("PruneSkipped", "Synced")]
            for wave in sorted({t.wave for t in phase_tasks}):
                steps.append(sorted((t for t in phase_tasks if t.wave == wave), key=lambda t: t.order))
        return steps

    def _execute(self, tasks: list[_Task]) -> None:
        steps = self._steps(tasks)
        for i, step in enumerate(steps):
            self._check_terminate()
            for task in step:
                self._run_task(task)
            self._progress()
            last = i == len(steps) - 1
            waits_for_hooks = any(t.action == "hook" for t in step)
            try:
                if not last or waits_for_hooks:
                    self._wait_healthy(step)
            finally:  # a failed hook fails the sync, and HookFailed still removes it
                self._cleanup_hooks(step)

    def _run_task(self, task: _Task) -> None:
        result = task.result
        try:
            if task.action == "prune":
                self.cluster.delete(self.cluster.resource_of(task.obj), result.key.namespace or None,
                                    result.key.name, propagation="Foreground")
                result.status, result.message = "Pruned", "pruned"
            elif task.action == "hook":
                self._start_hook(task)
            else:
                answer = self._write(task, dry_run=False)
                if task.action == "apply":
                    self.applied.append((task.obj, answer))
                result.status = "Synced"
                result.message = "created" if task.action == "create-namespace" else "applied"
        except ResourceError as exc:
            result.status, result.message = "SyncFailed", str(exc)
            self._progress()
            raise SyncFailed(f"{result.key.kind} {result.key.name}: {exc}") from None

    def _write(self, task: _Task, dry_run: bool) -> dict:
        if not dry_run:
            self._wait_until_served(task.obj)
        return write(self.cluster, task.obj, dry_run=dry_run, replace=self.options.replace)

    def _wait_until_served(self, obj: dict) -> None:
        """A custom resource whose CRD this sync just created: wait for the API to serve it."""
        deadline = time.monotonic() + 30
        while True:
            try:
                self.cluster.resource_of(obj)
                return
            except ResourceError:
                defined_here = (group_of(obj["apiVersion"]), obj["kind"]) in self.defined_kinds
                if not defined_here or time.monotonic() > deadline:
                    raise
            self._check_terminate()
            time.sleep(self.options.poll_interval)

    # --- hooks --------------------------------------------------------------------------------
    def _start_hook(self, task: _Task) -> None:
        obj = copy.deepcopy(task.obj)
        meta = obj["metadata"]
        resource = self.cluster.resource_of(obj)
        replace_earlier = "BeforeHookCreation" in hook_delete_policies(obj)
        if meta.get("name"):
            if replace_earlier:
                self._delete_and_wait(resource, meta.get("namespace"), meta["name"])
            obj = with_tracking(self.app, obj)
        else:  # generateName: each run is a new object, labelled so the next run finds it
            label = hook_label_value(self.app, obj)
            meta["labels"] = {**(meta.get("labels") or {}), HOOK_LABEL: label}
            if replace_earlier:
                namespace = meta.get("namespace")
                earlier, _ = self.cluster.list(resource, namespace,
                                               label_selector=f"{HOOK_LABEL}={label}")
                for old in earlier:
                    self._delete_and_wait(resource, namespace, old["metadata"]["name"])
        task.obj = obj
        created = self._write(task, dry_run=False)
        task.live_name = created["metadata"]["name"]
        task.result.key = key_of(created)
        task.result.status, task.result.message = RUNNING, "hook started"

    def _delete_and_wait(self, resource, namespace, name) -> None:
        if not self.cluster.delete(resource, namespace, name, propagation="Foreground"):
            return
        deadline = time.monotonic() + self.options.health_timeout
        while self.cluster.get(resource, namespace, name) is not None:
            self._check_terminate()
            if time.monotonic() > deadline:
                raise SyncFailed(f"{resource.kind} {name} from an earlier run is still being deleted")
            time.sleep(self.options.poll_interval)

    def _cleanup_hooks(self, step: list[_Task]) -> None:
        for task in step:
            if task.action != "hook" or task.result.status not in (SUCCEEDED, FAILED):
                continue
            policies = hook_delete_policies(task.obj)
            if ("HookSucceeded" in policies and task.result.status == SUCCEEDED) or \
                    ("HookFailed" in policies and task.result.status == FAILED):
                self.cluster.delete(self.cluster.resource_of(task.obj),
                                    task.result.key.namespace or None, task.live_name,
                                    propagation="Background")

    def _run_sync_fail_hooks(self, hooks: list[dict]) -> None:
        if not hooks or self.options.dry_run:
            return
        step = [self._task("SyncFail", sync_wave(h), "hook", h) for h in hooks]
        try:
            for task in step:
                self._run_task(task)
            self._wait_healthy(step)
            self._cleanup_hooks(step)
        except (EngineError, SyncFailed) as exc:
            for task in step:
                if task.result.status in ("Pending", RUNNING):
                    task.result.status, task.result.message = FAILED, str(exc)
        self._progress()

    # --- waiting ------------------------------------------------------------------------------
    def _wait_healthy(self, step: list[_Task]) -> None:
        pending = [t for t in step if t.action in ("apply", "hook", "create-namespace")]
        deadline = time.monotonic() + self.options.health_timeout
        while pending:
            self._check_terminate()
            still = []
            for task in pending:
                key = task.result.key
                health = assess(self.cluster.read(task.obj, task.live_name))
                if health.status in ("Healthy", "Suspended"):
                    if task.action == "hook":
                        task.result.status, task.result.message = SUCCEEDED, health.message or "hook finished"
                elif health.status == "Degraded":
                    if task.action == "hook":
                        task.result.status = FAILED
                        task.result.message = health.message or "hook failed"
                    self._progress()
                    raise SyncFailed(f"{key.kind} {key.name} is Degraded: {health.message}")
                else:
                    still.append(task)
            pending = still
            if pending:
                if time.monotonic() > deadline:
                    names = ", ".join(f"{t.result.key.kind} {t.result.key.name}" for t in pending)
                    raise SyncFailed(f"not healthy after {self.options.health_timeout:.0f} s: {names}")
                time.sleep(self.options.poll_interval)
        self._progress()

    def _check_terminate(self) -> None:
        if self.terminate.is_set():
            raise Terminated()

    def _progress(self) -> None:
        if self.on_progress:
            self.on_progress(self.results)
