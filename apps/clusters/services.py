"""Cluster actions: connect with stored credentials, check the connection, and hold one engine
runtime (connection, watch cache, comparator) per cluster per process."""
from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from apps.engine.cache import LiveStateCache
from apps.engine.cluster import Cluster as EngineCluster
from apps.engine.diff import Comparator
from apps.engine.errors import ClusterError

from .models import Cluster


@dataclass
class ClusterRuntime:
    cluster: EngineCluster
    cache: LiveStateCache
    comparator: Comparator
    version: tuple  # (pk, updated_at): a changed record gets a new runtime


_runtimes: dict[int, ClusterRuntime] = {}
_lock = threading.Lock()
_change_listeners: list[Callable] = []


def connect(record: Cluster) -> EngineCluster:
    """An engine connection from the stored record; ClusterError if it cannot be built."""
    if record.auth == Cluster.Auth.KUBECONFIG:
        return EngineCluster.from_kubeconfig(record.kubeconfig, name=record.name)
    if record.auth == Cluster.Auth.IN_CLUSTER:
        try:
            return EngineCluster.in_cluster(name=record.name)
        except Exception as exc:
            raise ClusterError(f"not running inside a cluster: {type(exc).__name__}") from None
    ca_file = _ca_file(record.ca_data) if record.ca_data else None
    return EngineCluster.from_token(record.server, record.token, ca_file=ca_file,
                                    insecure=record.insecure, name=record.name)


def _ca_file(pem: str) -> str:
    """A file holding `pem` (TLS libraries want a path), named by its content: one per CA, not
    one per connection."""
    path = Path(tempfile.gettempdir()) / f"gitops-ui-ca-{hashlib.sha256(pem.encode()).hexdigest()[:24]}.crt"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(pem)
        tmp.replace(path)
    return str(path)


def on_live_change(listener: Callable) -> None:
    """Register listener(cluster_id, key, obj, deleted) for every change the watch caches see."""
    _change_listeners.append(listener)


def runtime(record: Cluster) -> ClusterRuntime:
    version = (record.pk, record.updated_at)
    with _lock:
        current = _runtimes.get(record.pk)
        if current and current.version == version:
            return current
        if current:
            current.cache.stop()
        engine = connect(record)
        cluster_id = record.pk

        def notify(key, obj, deleted):
            for listener in _change_listeners:
                listener(cluster_id, key, obj, deleted)

        cache = LiveStateCache(engine, on_change=notify)
        current = _runtimes[record.pk] = ClusterRuntime(engine, cache, Comparator(engine, cache), version)
        return current


def forget(cluster_id: int) -> None:
    """Stop watching a cluster (deleted, or its credentials changed)."""
    with _lock:
        current = _runtimes.pop(cluster_id, None)
    if current:
        current.cache.stop()


def stop_all() -> None:
    for cluster_id in list(_runtimes):
        forget(cluster_id)


def check_connection(record: Cluster) -> bool:
    """Ask the API server for its version; keep the outcome on the record for the user."""
    try:
        version = connect(record).version()
        record.connection_status, record.connection_message = "Successful", ""
        record.server_version = version.get("gitVersion", "")
        ok = True
    except ClusterError as exc:
        record.connection_status, record.connection_message = "Failed", str(exc)
        ok = False
    Cluster.objects.filter(pk=record.pk).update(
        connection_status=record.connection_status, connection_message=record.connection_message,
        server_version=record.server_version)
    return ok
