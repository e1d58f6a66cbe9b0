"""Cluster actions: connect with stored credentials, check the connection, and hold one engine
runtime (connection, watch cache, comparator) per cluster per process."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

from apps.audit import services as audit
from apps.engine.cache import LiveStateCache
from apps.engine.cluster import Cluster as EngineCluster
from apps.engine.diff import Comparator
from apps.engine.errors import ClusterError
from apps.engine.kubeconfig import parse as parse_kubeconfig

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
    """An engine connection from the stored record; ClusterError if it cannot be built (a stored
    kubeconfig is parsed again here: it may predate the rules save-time validation applies)."""
    if record.auth == Cluster.Auth.KUBECONFIG:
        return EngineCluster.from_kubeconfig(record.kubeconfig, name=record.name)
    if record.auth == Cluster.Auth.IN_CLUSTER:
        try:
            return EngineCluster.in_cluster(name=record.name)
        except Exception as exc:
            raise ClusterError(f"not running inside a cluster: {type(exc).__name__}") from None
    return EngineCluster.from_token(record.server, record.token, ca_pem=record.ca_data or None,
                                    insecure=record.insecure, name=record.name)


def credential_errors(auth: str, server: str, token: str, kubeconfig: str) -> dict[str | None, str]:
    """field (None: the record as a whole) -> why a cluster with these values cannot connect.
    Asked by the API and the admin when a cluster is saved, so that nothing is stored that
    cannot be used, or would run a command or read a file when used."""
    if auth == Cluster.Auth.TOKEN and not (server and token):
        return {None: "auth 'token' needs server and token"}
    if auth == Cluster.Auth.KUBECONFIG:
        if not kubeconfig:
            return {None: "auth 'kubeconfig' needs a kubeconfig"}
        try:
            parse_kubeconfig(kubeconfig)
        except ClusterError as exc:
            return {"kubeconfig": str(exc)}
    return {}


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
        with connect(record) as engine:  # closed at once: its key files are memory, not disk
            version = engine.version()
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


def unreachable(record: Cluster, timeout: float = 3.0) -> str | None:
    """Why the cluster cannot be used right now (down, TLS failure, credentials refused), or
    None if it answers. One short request (GET /version), so a refresh pass can probe each
    cluster once instead of failing once per application."""
    from apps.engine.errors import ResourceError

    try:
        with connect(record) as engine:
            engine.timeout = timeout  # the default (30 s) is for real work, not for a probe
            engine.version()
    except ResourceError:  # it answered, refusing only this request (e.g. 403 on /version)
        return None
    except ClusterError as exc:
        return str(exc)
    return None


CLUSTER_FIELDS = ("name", "auth", "server", "token", "kubeconfig", "ca_data", "insecure")


def save_cluster(record: Cluster) -> Cluster:
    """Create or edit a cluster (values already validated); the audit log gets what changed,
    a credential only as "(changed)"."""
    return audit.save_recorded(record, "cluster", CLUSTER_FIELDS)


def delete_cluster(record: Cluster) -> None:
    """Delete a cluster no application uses (ProtectedError otherwise) and stop watching it."""
    pk, name = record.pk, record.name
    record.delete()
    forget(pk)
    audit.record("cluster.deleted", None, object_type="cluster", object_name=name,
                 details={"id": pk})
