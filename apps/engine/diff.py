"""Desired against live, the way the API server itself would see it.

Each desired object is sent as a server-side apply *dry run*: the answer is what the live object
would become if we applied now, with every default and every other manager's field in place. If
that equals the live object, the resource is Synced, so defaults filled in by the API server
never show as drift. Otherwise the JSON pointers of the fields that differ say why it is
OutOfSync. An application's ignoreDifferences (ignore.py) are left out of both sides first.

A no-change refresh costs dictionary lookups only: results are remembered per resource by
(desired manifest, live resourceVersion) and per application by the fingerprint of both.
"""
from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .cache import LiveStateCache
from .cluster import Cluster
from .errors import ClusterError, ResourceError
from .health import HealthResult, assess, worst
from .ignore import IgnoreRule, remove_ignored, remove_owned
from .resources import (ResourceKey, compare_options, defined_kinds, hook_types, key_of,
                        sync_options, with_tracking)

FIELD_MANAGER = "gitops-ui"
SYNCED, OUT_OF_SYNC = "Synced", "OutOfSync"
_VOLATILE_METADATA = ("managedFields", "resourceVersion", "generation", "creationTimestamp",
                      "uid", "selfLink")
_CATCH_UP_TRIES = 4
ACCEPTED: Mapping = MappingProxyType({})  # ResourceState.predicted once compared


@dataclass
class ResourceState:
    key: ResourceKey
    desired: dict | None  # as we would apply it (namespace and tracking filled in)
    live: dict | None
    # Whether the server accepted desired in a dry run (ACCEPTED), or None when it was not asked
    # or refused. Its answer is compared, then dropped: kept for every managed object (with
    # managedFields), answers were the engine's largest use of memory.
    predicted: Mapping | None = None
    sync: str = SYNCED
    differences: list[str] = field(default_factory=list)  # JSON pointers
    requires_pruning: bool = False
    health: HealthResult | None = None
    error: str | None = None


@dataclass
class Comparison:
    resources: list[ResourceState]
    hooks: list[dict]  # desired hook manifests (not compared; run by sync)
    errors: list[str]  # ComparisonError conditions
    sync: str = SYNCED
    health: str = "Healthy"

    def out_of_sync(self) -> list[ResourceState]:
        return [r for r in self.resources if r.sync == OUT_OF_SYNC]


def prepare(app: str, manifests: list[dict], cluster: Cluster, namespace: str
            ) -> tuple[list[dict], list[dict], list[tuple[dict, str]]]:
    """Split rendered manifests into resources and hooks, each with its namespace and tracking id,
    and objects of kinds the cluster does not serve, each with why.

    Unknown kinds are an error unless a CustomResourceDefinition in the same set defines them.
    """
    scopes = defined_kinds(manifests)
    resources, hooks, unserved = [], [], []
    for obj in manifests:
        key = key_of(obj)
        try:
            namespaced = cluster.resource_of(obj).namespaced
        except ResourceError as exc:
            if (key.group, key.kind) not in scopes:
                # Not known to be namespaced or not: listed as written.
                unserved.append((with_tracking(app, obj), str(exc)))
                continue
            namespaced = scopes[(key.group, key.kind)] == "Namespaced"
        obj = copy.deepcopy(obj)
        meta = obj["metadata"]
        if namespaced:
            meta["namespace"] = meta.get("namespace") or namespace
        else:
            meta.pop("namespace", None)
        types = hook_types(obj)
        if "Skip" in types:
            continue
        if types:
            hooks.append(obj)
        else:
            resources.append(with_tracking(app, obj))
    return resources, hooks, unserved


class Comparator:
    """Compares applications on one cluster; keeps the memo that makes refreshes cheap."""

    def __init__(self, cluster: Cluster, cache: LiveStateCache):
        self.cluster, self.cache = cluster, cache
        # One entry per resource (the newest), so the memo never outgrows what is managed.
        self._resource_memo: dict[ResourceKey, tuple[tuple, tuple, tuple | None]] = {}
        self._app_memo: dict[str, tuple[str, Comparison]] = {}
        self._namespaces_watchable = True

    def compare(self, app: str, manifests: list[dict], namespace: str,
                ignore: list[IgnoreRule] = ()) -> Comparison:
        resources, hooks, unserved = prepare(app, manifests, self.cluster, namespace)
        self._watch_kinds(resources)
        desired = {key_of(o): o for o in resources}
        tracked = self.cache.tracked_by(app)
        keys = sorted(set(desired) | set(tracked))

        fingerprint = _fingerprint(manifests, namespace, ignore,
                                   [(str(k), _rv(self.cache.get(k))) for k in keys])
        remembered = self._app_memo.get(app)
        if remembered and remembered[0] == fingerprint and not unserved:
            return remembered[1]

        states = []
        for key in keys:
            live = self.cache.get(key)
            if key in desired:
                states.append(self._compare_one(key, desired[key], live, ignore))
            elif hook_types(live):
                continue  # a hook run by an earlier sync, not an extraneous resource
            else:
                state = ResourceState(key, None, live, sync=OUT_OF_SYNC, requires_pruning=True,
                                      differences=["(not in Git)"])
                if "IgnoreExtraneous" in compare_options(live):
                    state.sync = SYNCED
                states.append(state)
        # Listed like any resource the cluster lacks, with the reason, not only as a condition.
        states += [ResourceState(key_of(obj), obj, None, sync=OUT_OF_SYNC,
                                 differences=["(missing)"], error=why) for obj, why in unserved]
        errors = []
        for state in states:
            state.health = assess(state.live)
            if state.error:
                errors.append(state.error)
        result = Comparison(states, hooks, errors)
        result.sync = OUT_OF_SYNC if result.out_of_sync() or errors else SYNCED
        result.health = worst([s.health.status for s in states if not s.requires_pruning]) \
            if states else "Healthy"
        # An object not yet checked by the server (its namespace comes with the sync) must be
        # checked on the next refresh, even if nothing else changed.
        if not errors and all(s.predicted is not None or s.requires_pruning for s in states):
            self._app_memo[app] = (fingerprint, result)
        return result

    def forget(self, app: str) -> None:
        self._app_memo.pop(app, None)

    def _watch_kinds(self, resources: list[dict]) -> None:
        kinds = set()
        for obj in resources:
            try:
                kinds.add(self.cluster.resource_of(obj))
            except ResourceError:
                pass  # a CRD this app installs itself; watched once it exists
        self.cache.ensure_watching(kinds)

    def _compare_one(self, key, desired, live, ignore) -> ResourceState:
        state = ResourceState(key, desired, live)
        rules = [r for r in ignore if r.matches(key)]
        memo_key = (_digest(desired), _rv(live), tuple(rules))
        mark = _spec_mark(live)
        remembered = self._resource_memo.get(key)
        if remembered and (remembered[0] == memo_key or (
                mark is not None and remembered[2] == mark and remembered[0][::2] == memo_key[::2])):
            state.predicted, state.sync, state.differences = remembered[1]
            return state
        if live is None:
            state.sync, state.differences = OUT_OF_SYNC, ["(missing)"]
            # The API server holds a create in a namespace it has not seen for ~50 ms before
            # refusing it; a new app's namespace comes with the sync, so do not ask.
            if not key.namespace or self._namespace_exists(key.namespace):
                state.predicted = self._dry_run(state, missing=True)
        else:
            state.predicted = self._dry_run(state, missing=False)
            # The watch has not caught up with the server yet: compare with what the server
            # answered from, or a controller's fresh write shows as drift. A controller may
            # write again between the read and the dry run (a new Deployment's revision
            # annotation, then its status), so try a few times.
            for _ in range(_CATCH_UP_TRIES):
                if state.predicted is None or _rv(state.predicted) == _rv(live):
                    break
                fresh = self.cluster.read(desired)
                if fresh is None:
                    break
                state.live = live = fresh
                state.predicted = self._dry_run(state, missing=False)
            if state.predicted is not None and _needs_owners(rules, live):
                # The watch cache keeps no managedFields (they are large); the fields a trusted
                # manager owns are read from the server, once per change of the object.
                fresh = self.cluster.read(desired)
                if fresh is not None:
                    moved = _rv(fresh) != _rv(live)
                    state.live = live = fresh
                    if moved:
                        state.predicted = self._dry_run(state, missing=False)
            if state.predicted is not None:
                state.differences = differences(*comparable(live, state.predicted, rules))
                live["metadata"].pop("managedFields", None)  # read for this comparison only
                state.sync = OUT_OF_SYNC if state.differences else SYNCED
                state.predicted = ACCEPTED
            else:
                state.sync = OUT_OF_SYNC
        if state.error is None and state.predicted is not None:
            self._resource_memo[key] = (memo_key, (state.predicted, state.sync, state.differences),
                                        _spec_mark(state.live))
        return state

    def remember_applied(self, desired: dict, applied: dict, ignore: list[IgnoreRule] = ()) -> None:
        """Record that `applied` (the server's answer to applying `desired`) is Synced, so the
        refresh right after a sync does not repeat the dry run for it."""
        key = key_of(desired)
        rules = tuple(r for r in ignore if r.matches(key))
        self._resource_memo[key] = ((_digest(desired), _rv(applied), rules), (ACCEPTED, SYNCED, []),
                                    _spec_mark(applied))

    def _namespace_exists(self, name: str) -> bool:
        namespaces = self.cluster.resource_for("v1", "Namespace")
        if self._namespaces_watchable:
            try:
                self.cache.ensure_watching([namespaces])
                return self.cache.get(ResourceKey("", "Namespace", "", name)) is not None
            except ClusterError:  # credentials that may not list namespaces: ask one by one
                self._namespaces_watchable = False
        try:
            return self.cluster.get(namespaces, None, name) is not None
        except ResourceError:
            return True  # cannot tell: let the dry run decide

    def _dry_run(self, state: ResourceState, missing: bool) -> dict | None:
        try:
            return predict(self.cluster, state.desired)
        except ResourceError as exc:
            # A missing object may live in a namespace or be of a kind that this sync creates
            # first; the sync's own dry run checks it again in order.
            if missing and exc.status in (404, None):
                return None
            if missing and "SkipDryRunOnMissingResource=true" in sync_options(state.desired):
                return None
            state.error = str(exc)
            return None


def predict(cluster: Cluster, obj: dict) -> dict:
    """The live object as it would be after a sync, for comparing.

    Replace=true objects are predicted by apply too: a PUT drops what controllers wrote (a
    Deployment's revision annotation), which would read as drift forever. The PUT is asked
    only when apply refuses the change (an immutable field, the reason Replace exists)."""
    if not obj["metadata"].get("name"):
        return cluster.create(obj, FIELD_MANAGER, dry_run=True)
    try:
        return cluster.apply(obj, FIELD_MANAGER, dry_run=True)
    except ResourceError as exc:
        if exc.status == 422 and "Replace=true" in sync_options(obj):
            return cluster.replace(obj, FIELD_MANAGER, dry_run=True)
        raise


def write(cluster: Cluster, obj: dict, *, dry_run: bool, replace: bool = False) -> dict:
    """Send one manifest the way it asks to be sent: PUT with Replace=true (or `replace`),
    POST when the server is to pick the name (generateName), else server-side apply."""
    if replace or "Replace=true" in sync_options(obj):
        return cluster.replace(obj, FIELD_MANAGER, dry_run=dry_run)
    if not obj["metadata"].get("name"):
        return cluster.create(obj, FIELD_MANAGER, dry_run=dry_run)
    return cluster.apply(obj, FIELD_MANAGER, dry_run=dry_run)


def normalise(obj: dict) -> dict:
    """The parts of an object a comparison looks at."""
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.get("metadata", {})
    for name in _VOLATILE_METADATA:
        meta.pop(name, None)
    if not meta.get("annotations"):
        meta.pop("annotations", None)
    return out


def comparable(live: dict, predicted: dict, rules: list[IgnoreRule] = ()) -> tuple[dict, dict]:
    """Live and predicted as compared: normalised, without what ignoreDifferences leaves out.
    Trusted managers' fields are read from the live object, the one they wrote."""
    a, b = remove_ignored(normalise(live), rules), remove_ignored(normalise(predicted), rules)
    remove_owned(a, b, rules, live.get("metadata", {}).get("managedFields"))
    for doc in (a, b):  # an annotation map emptied by a rule is no difference
        if not doc.get("metadata", {}).get("annotations", True):
            doc["metadata"].pop("annotations")
    return a, b


def differences(live, predicted, path: str = "") -> list[str]:
    """JSON pointers (RFC 6901) where the two documents differ."""
    if isinstance(live, dict) and isinstance(predicted, dict):
        found = []
        for k in sorted(set(live) | set(predicted), key=str):
            sub = f"{path}/{_escape(str(k))}"
            if k not in live or k not in predicted:
                found.append(sub)
            else:
                found += differences(live[k], predicted[k], sub)
        return found
    if isinstance(live, list) and isinstance(predicted, list) and len(live) == len(predicted):
        found = []
        for i, (a, b) in enumerate(zip(live, predicted)):
            found += differences(a, b, f"{path}/{i}")
        return found
    return [] if live == predicted else [path or "/"]


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _needs_owners(rules, live: dict) -> bool:
    return any(r.managed_fields_managers for r in rules) and "managedFields" not in live["metadata"]


def _spec_mark(obj: dict | None) -> tuple | None:
    """What changes whenever anything but the status of `obj` changes: its generation (bumped by
    the API server on every change of spec) with its labels and annotations; None for kinds
    without a generation. A Deployment's many status writes during a rollout then cost no
    dry run: the comparison of the same desired object with the same mark is remembered."""
    meta = (obj or {}).get("metadata") or {}
    if not meta.get("generation"):
        return None
    return (meta["generation"], _digest([meta.get("labels"), meta.get("annotations"),
                                         meta.get("ownerReferences"), meta.get("finalizers")]))


def _rv(obj: dict | None) -> str:
    return obj["metadata"].get("resourceVersion", "") if obj else ""


def _digest(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _fingerprint(manifests, namespace, ignore, live_versions) -> str:
    return _digest([manifests, namespace, [repr(r) for r in ignore], live_versions])
