"""LiveStateCache: what is in one cluster, kept in memory by list+watch per kind.

A refresh reads this cache instead of the API server: the cost of comparing an application is a
few dictionary lookups until the cluster changes. Kinds are watched on demand (the kinds that
applications render or have managed), CRDs included. Each watched kind has one thread that lists
once, then follows the watch from that resourceVersion, resuming from bookmarks and re-listing
only when the server says the version is too old (410 Gone).

`on_change(key, obj, deleted)` is called from the watch threads for every change after the first
list (`obj` is the last known state, also for a deletion); the caller uses it to refresh the
application that tracks the object (self-heal, live health).
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Callable, Iterable

from .cluster import ApiResource, Cluster
from .errors import ClusterError, EngineError, ResourceError
from .resources import ResourceKey, key_of, tracked_by

log = logging.getLogger(__name__)
_DROP_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def _slim(obj: dict) -> dict:
    """Drop what no comparison needs and what costs the most memory; share the rest's strings."""
    meta = obj.get("metadata") or {}
    meta.pop("managedFields", None)
    ann = meta.get("annotations")
    if ann:
        for name in _DROP_ANNOTATIONS:
            ann.pop(name, None)
    return _shared(obj)


_SHARED_UP_TO = 64  # characters: field names, labels, kinds, names, reasons; not long values


def _shared(value):
    """`value` with its keys and short strings replaced by the one interned copy (sys.intern).
    The JSON decoder makes new strings for every object, and thousands of objects spell the
    same field names, labels and values: about 60 % of a cached object's memory (3.5 µs each)."""
    if isinstance(value, dict):
        return {_intern(k): _shared(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shared(v) for v in value]
    if isinstance(value, str) and len(value) <= _SHARED_UP_TO:
        return _intern(value)
    return value


_intern = sys.intern


class _KindWatch:
    def __init__(self, cache: "LiveStateCache", resource: ApiResource):
        self.cache, self.resource = cache, resource
        self.listed = threading.Event()
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name=f"watch-{resource.plural}.{resource.group}")

    def _run(self) -> None:
        backoff = 0.5
        while not self.cache._stopping.is_set():
            try:
                items, version = self.cache.cluster.list(self.resource)
                self.cache._replace_kind(self.resource, items)
                self.error = None
                self.listed.set()
                backoff = 0.5
                self._follow(version)
            except ResourceError as exc:
                if exc.status == 410:
                    continue  # too old: list again
                self._failed(str(exc))
            except (ClusterError, EngineError) as exc:
                self._failed(str(exc))
            except Exception as exc:  # a bug must not kill the watch for good
                if self.cache._stopping.is_set():
                    return
                log.exception("watch of %s failed", self.resource.plural)
                self._failed(f"{type(exc).__name__}: {exc}")
            if self.error:
                self.cache._stopping.wait(backoff)
                backoff = min(backoff * 2, 30)

    def _failed(self, message: str) -> None:
        self.error = message
        self.listed.set()  # waiters see the error instead of blocking

    def _follow(self, version: str) -> None:
        while not self.cache._stopping.is_set():
            for event, obj in self.cache.cluster.watch(self.resource, version, timeout_seconds=240):
                version = obj["metadata"].get("resourceVersion", version)
                if event == "BOOKMARK":
                    continue
                self.cache._apply_event(event, obj)
                if self.cache._stopping.is_set():
                    return


def _at_least(obj: dict | None, version: str) -> bool:
    """`obj` is at `version` or later. Versions are compared as numbers when they are (etcd's
    revisions); otherwise any other version of the object counts as later."""
    if obj is None:
        return False
    have = obj["metadata"].get("resourceVersion", "")
    if have == version:
        return True
    return int(have) > int(version) if have.isdigit() and version.isdigit() else True


class LiveStateCache:
    def __init__(self, cluster: Cluster,
                 on_change: Callable[[ResourceKey, dict, bool], None] | None = None):
        self.cluster = cluster
        self.on_change = on_change
        self._objects: dict[ResourceKey, dict] = {}
        self._by_app: dict[str, set[ResourceKey]] = {}
        self._watches: dict[tuple[str, str], _KindWatch] = {}
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()

    # --- reading ------------------------------------------------------------------------------
    def get(self, key: ResourceKey) -> dict | None:
        return self._objects.get(key)

    def tracked_by(self, app: str) -> dict[ResourceKey, dict]:
        with self._lock:
            return {k: self._objects[k] for k in self._by_app.get(app, ()) if k in self._objects}

    def wait_until_seen(self, versions: dict[ResourceKey, str], timeout: float) -> bool:
        """Wait until the watches have delivered each object at the resourceVersion given (what
        a sync just wrote), or a later one; False after `timeout` seconds. Kinds not watched
        are not waited for. The refresh right after a sync must compare with what it wrote,
        not with the cache a moment before."""
        versions = {k: rv for k, rv in versions.items() if self.watching(k.group, k.kind)}
        deadline = time.monotonic() + timeout
        with self._changed:
            while not all(_at_least(self._objects.get(k), rv) for k, rv in versions.items()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def watching(self, group: str, kind: str) -> bool:
        return (group, kind) in self._watches

    def errors(self) -> dict[str, str]:
        return {f"{w.resource.plural}.{w.resource.group}".rstrip("."): w.error
                for w in self._watches.values() if w.error}

    def __len__(self) -> int:
        return len(self._objects)

    # --- watching -----------------------------------------------------------------------------
    def ensure_watching(self, resources: Iterable[ApiResource], timeout: float = 60) -> None:
        """Start watching these kinds; return once each has been listed. A kind whose list
        failed raises ClusterError with the cause (the watch keeps retrying)."""
        new = []
        with self._lock:
            for resource in resources:
                if not {"list", "watch"} <= resource.verbs:
                    continue
                ident = (resource.group, resource.kind)
                if ident not in self._watches:
                    watch = self._watches[ident] = _KindWatch(self, resource)
                    watch.thread.start()
                    new.append(watch)
                else:
                    new.append(self._watches[ident])
        deadline = time.monotonic() + timeout
        for watch in new:
            watch.listed.wait(max(0.0, deadline - time.monotonic()))
            if not watch.listed.is_set():
                raise ClusterError(f"listing {watch.resource.plural} on {self.cluster.name} "
                                   f"took longer than {timeout:.0f} s")
            if watch.error:
                raise ClusterError(watch.error)

    def stop(self) -> None:
        self._stopping.set()
        for watch in list(self._watches.values()):
            watch.thread.join(0.2)  # threads blocked in a watch end with their stream

    # --- updates from watch threads -----------------------------------------------------------
    def _replace_kind(self, resource: ApiResource, items: list[dict]) -> None:
        changed = []
        fresh = {}
        for i, obj in enumerate(items):  # each decoded object let go once its slim copy exists
            fresh[key_of(obj)] = _slim(obj)
            items[i] = None
        with self._lock:
            stale = [k for k in self._objects if k.group == resource.group
                     and k.kind == resource.kind and k not in fresh]
            for key in stale:
                changed.append((key, self._objects[key], True))
                self._remove(key)
            for key, obj in fresh.items():
                old = self._objects.get(key)
                if old is None or old["metadata"].get("resourceVersion") != \
                        obj["metadata"].get("resourceVersion"):
                    changed.append((key, obj, False))
                self._store(key, obj)
            first = not self._watches[(resource.group, resource.kind)].listed.is_set()
            self._changed.notify_all()
        if not first:  # a re-list after an outage: report what moved meanwhile
            self._notify(changed)

    def _apply_event(self, event: str, obj: dict) -> None:
        key = key_of(obj)
        deleted = event == "DELETED"
        slim = None if deleted else _slim(obj)
        with self._lock:
            if deleted:
                self._remove(key)
            else:
                self._store(key, slim)
            self._changed.notify_all()
        self._notify([(key, obj, deleted)])

    def _store(self, key: ResourceKey, obj: dict) -> None:
        old = self._objects.get(key)
        if old is not None:
            self._unindex(key, old)
        self._objects[key] = obj
        app = tracked_by(obj)
        if app:
            self._by_app.setdefault(app, set()).add(key)

    def _remove(self, key: ResourceKey) -> None:
        old = self._objects.pop(key, None)
        if old is not None:
            self._unindex(key, old)

    def _unindex(self, key: ResourceKey, obj: dict) -> None:
        app = tracked_by(obj)
        if app and app in self._by_app:
            self._by_app[app].discard(key)
            if not self._by_app[app]:
                del self._by_app[app]

    def _notify(self, changes) -> None:
        if not self.on_change:
            return
        for key, obj, deleted in changes:
            try:
                self.on_change(key, obj, deleted)
            except Exception:
                log.exception("on_change handler failed for %s", key)
