"""The status never lies and nothing fails silently, on real parts (git server, control plane).

A bug in a refresh is a condition on the app, not a traceback every few seconds; a comparison
that cannot be made (cluster unreachable, commit that does not render) shows sync Unknown with
the cause instead of a stale "Synced"; a cluster that comes back gets its apps refreshed at once;
rolling back in Git after a pinned rollback turns automated sync back on.

The cluster outage is real: a second Cluster record reaches the shared API server through a
small TCP proxy on loopback, which the test stops (every connection dropped, new ones refused)
and starts again on the same port.
"""
import logging
import socket
import threading
import time
from datetime import timedelta
from urllib.parse import urlparse

import pytest
import yaml

from apps.applications import jobs, operations, refreshing, services
from apps.applications.models import Application, Operation
from apps.clusters import services as clusters
from apps.clusters.models import Cluster
from tests.engine.manifests import configmap
from tests.localstack.process import free_port
from tests.waiting import until

from tests.appstack import refreshed, unique_ids

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]


# --- a cluster that can go away ----------------------------------------------------------------
class TcpProxy:
    """127.0.0.1:<port> forwarded to another port; stop() is an outage (open connections cut,
    new ones refused), start() ends it on the same port."""

    def __init__(self, target_port: int):
        self.port, self.target_port = free_port(), target_port
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> "TcpProxy":
        self._listener = socket.create_server(("127.0.0.1", self.port))  # SO_REUSEADDR set
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener:
            listener.close()
        with self._lock:
            doomed, self._sockets = self._sockets, set()
        for sock in doomed:
            _close(sock)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                _close(client)
                continue
            with self._lock:
                if self._listener is not listener:  # stopped meanwhile
                    _close(client)
                    _close(upstream)
                    return
                self._sockets |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(src, dst), daemon=True).start()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        _close(src)
        _close(dst)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


@pytest.fixture
def proxy(kube):
    proxy = TcpProxy(urlparse(kube.url).port).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def flaky_cluster(kube, proxy) -> Cluster:
    """The test cluster, reached through the proxy (same credentials, same CA: the API server's
    certificate names 127.0.0.1, whatever the port)."""
    config = yaml.safe_load(kube.kubeconfig_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    record = Cluster.objects.create(name=f"flaky-{next(unique_ids)}", auth=Cluster.Auth.KUBECONFIG,
                                    kubeconfig=yaml.safe_dump(config))
    yield record
    clusters.forget(record.pk)  # its watch threads would retry the stopped proxy until the end


def live_configmap(record: Cluster, namespace: str, obj_name: str) -> dict | None:
    """The object as the API server has it, asked through `record` (the tests pass the direct
    cluster to look past the proxy)."""
    engine = clusters.runtime(record).cluster
    return engine.get(engine.resource_for("v1", "ConfigMap"), namespace, obj_name)


def run_queued_jobs(queue) -> None:
    """What a worker would do with the jobs a refresh pass queued (syncs, refreshes), in-process."""
    for job in queue.jobs:
        queue.remove(job)
        job.perform()


def fresh(app) -> Application:
    return Application.objects.get(pk=app.pk)


# --- a bug in a refresh ------------------------------------------------------------------------
def test_a_bug_in_a_refresh_is_a_condition_logged_once_and_not_retried_at_once(
        repo, make_app, caplog, sync_queue):
    repo.push({"cfg.yaml": configmap("cfg")})
    # A setting of the wrong shape, as stored before validation existed (a bare JSON pointer
    # instead of a rule): comparing raises AttributeError, a bug rather than an EngineError.
    app = make_app(repo, ignore_differences=["/spec/replicas"])

    with caplog.at_level(logging.DEBUG, logger="apps.applications"):
        jobs.refresh(app.name)  # the single-app path a worker runs: must not raise
        first = fresh(app)
        jobs.refresh(app.name)  # the same cause again: shown, not logged again
    [cond] = first.conditions
    assert cond["type"] == "ComparisonError"
    assert cond["message"].startswith("unexpected error: AttributeError:"), cond
    assert first.sync_status == "Unknown" and first.reconciled_at is not None
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "unexpected error: AttributeError" in errors[0].getMessage() and app.name in errors[0].getMessage()
    assert errors[0].exc_info is None and "\n" not in errors[0].getMessage()  # one line, no traceback

    # The reconciler's pass does not pick it again until its interval has passed.
    assert refreshing.refresh_due() == 0

    # Through the reconciler's path (refresh_many), once it is due: the same condition.
    Application.objects.filter(pk=app.pk).update(reconciled_at=first.reconciled_at - timedelta(days=1))
    assert refreshing.refresh_due() == 1
    again = fresh(app)
    assert again.conditions[0]["message"] == cond["message"]
    assert again.reconciled_at > first.reconciled_at


# --- status must not lie -----------------------------------------------------------------------
def test_unreachable_cluster_makes_sync_and_health_unknown_with_the_cause(
        repo, make_app, flaky_cluster, proxy, admin_client):
    repo.push({"cfg.yaml": configmap("cfg"), "other.yaml": configmap("other")})
    app = make_app(repo, automated=True)
    app.cluster = flaky_cluster
    app.save()
    app = until(lambda: refreshed(app), lambda a: (a.sync_status, a.health_status) == ("Synced", "Healthy"))
    assert (app.sync_status, app.health_status) == ("Synced", "Healthy")
    deployed = sorted(r["name"] for r in app.resources)

    proxy.stop()
    app = until(lambda: refreshed(app), lambda a: a.sync_status != "Synced", timeout=15)
    assert (app.sync_status, app.health_status) == ("Unknown", "Unknown")
    [cond] = app.conditions
    assert cond["type"] == "ClusterError" and flaky_cluster.name in cond["message"]
    assert sorted(r["name"] for r in app.resources) == deployed  # what was deployed, still shown

    shown = admin_client.get(f"/api/applications/{app.name}")
    assert shown.status_code == 200, shown.content
    body = shown.json()
    assert body["sync_status"] == "Unknown" and body["health_status"] == "Unknown"
    assert body["conditions"][0]["type"] == "ClusterError"


def test_commit_that_does_not_render_is_unknown_naming_the_file_and_keeps_live_health(
        repo, make_app, cluster_record):
    repo.push({"cfg.yaml": configmap("cfg")})
    app = until(lambda: refreshed(make_app(repo, automated=True)),
                lambda a: (a.sync_status, a.health_status) == ("Synced", "Healthy"))
    broken = repo.push({"cfg.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [oops\n"})
    app = refreshed(app)
    assert app.sync_status == "Unknown"
    assert app.health_status == "Healthy"  # the live objects are still known, and still healthy
    [cond] = app.conditions
    assert cond["type"] == "ComparisonError" and cond["message"].startswith("cfg.yaml:")
    assert app.target_sha == broken != app.synced_sha  # the commit that failed, not the last good one
    assert [r["name"] for r in app.resources] == ["cfg"]


def test_the_reconciler_pass_shows_an_outage_without_waiting_for_a_refresh(
        repo, make_app, flaky_cluster, proxy, sync_queue):
    repo.push({"cfg.yaml": configmap("cfg")})
    app = make_app(repo)
    app.cluster = flaky_cluster
    app.save()
    app = refreshed(app)
    assert app.sync_status == "OutOfSync" and app.conditions == []

    proxy.stop()
    # Refreshed a moment ago, so not due: the pass's probe of the cluster is what shows it.
    assert refreshing.refresh_due() == 0
    app = fresh(app)
    assert (app.sync_status, app.health_status) == ("Unknown", "Unknown")
    assert app.conditions[0]["type"] == "ClusterError"
    marked_at = app.reconciled_at
    assert refreshing.refresh_due() == 0  # still down: nothing refreshed, nothing rewritten
    assert fresh(app).reconciled_at == marked_at


# --- a cluster that comes back -----------------------------------------------------------------
def test_commit_made_during_an_outage_is_applied_soon_after_the_cluster_returns(
        repo, make_app, flaky_cluster, proxy, cluster_record, settings, sync_queue):
    assert settings.GITOPS_UI_REFRESH_INTERVAL == 180  # only the retry can explain a fast apply
    repo.push({"cfg.yaml": configmap("cfg", k="before")})
    app = make_app(repo, automated=True)
    app.cluster = flaky_cluster
    app.save()
    app = until(lambda: refreshed(app), lambda a: a.sync_status == "Synced")
    assert live_configmap(cluster_record, app.namespace, "cfg")["data"] == {"k": "before"}

    proxy.stop()
    refreshing.refresh_due()  # the probe marks the app
    assert fresh(app).conditions[0]["type"] == "ClusterError"
    sha = repo.push({"cfg.yaml": configmap("cfg", k="after")})
    assert refreshing.refresh_due() == 0  # while it is down, nothing is tried
    assert live_configmap(cluster_record, app.namespace, "cfg")["data"] == {"k": "before"}

    proxy.start()
    back_at = time.monotonic()

    def reconciler_pass():
        # The reconciler enqueues this every 10 s; every second here keeps the test short.
        refreshing.refresh_due()
        run_queued_jobs(sync_queue)
        time.sleep(1)
        return live_configmap(cluster_record, app.namespace, "cfg")["data"]

    data = until(reconciler_pass, lambda d: d == {"k": "after"}, timeout=90)
    assert data == {"k": "after"}
    assert time.monotonic() - back_at < 60  # far below the 180 s refresh interval
    app = fresh(app)
    assert app.synced_sha == sha and app.conditions == []
    assert app.operations.filter(automated=True, sha=sha, phase=Operation.Phase.SUCCEEDED).exists()


# --- rollback ----------------------------------------------------------------------------------
def test_rollback_in_git_after_a_pinned_rollback_turns_automated_sync_back_on(
        repo, make_app, admin_client, sync_queue):
    first = repo.push({"cfg.yaml": configmap("cfg", version="1")})
    app = until(lambda: refreshed(make_app(repo, automated=True)), lambda a: a.synced_sha == first)
    second = repo.push({"cfg.yaml": configmap("cfg", version="2")})
    app = until(lambda: refreshed(app), lambda a: a.synced_sha == second)
    entry = app.history.get(sha=first)

    op = services.rollback(app, entry, mode="pin")
    assert operations.run(op.pk).phase == "Succeeded"
    app = fresh(app)
    assert (app.automated, app.resume_automated, app.pinned_revision) == (False, True, first)

    response = admin_client.post(f"/api/applications/{app.name}/rollback",
                                 {"history_id": entry.pk, "mode": "git"},
                                 content_type="application/json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["automated"] is True and "automated sync is on" in body["detail"]
    revert = body["commit"]
    app = fresh(app)
    assert (app.automated, app.resume_automated, app.pinned_revision) == (True, False, "")

    run_queued_jobs(sync_queue)  # the refresh the rollback queued
    app = fresh(app)
    # The revert holds what the pin deployed: the app follows the branch again and is in step.
    assert (app.target_sha, app.sync_status) == (revert, "Synced")
    assert live_configmap(app.cluster, app.namespace, "cfg")["data"] == {"version": "1"}

    # And automated sync works again: the next commit is applied without anyone asking.
    third = repo.push({"cfg.yaml": configmap("cfg", version="3")})
    app = refreshed(app)
    assert app.synced_sha == third and app.operations.first().automated
    assert live_configmap(app.cluster, app.namespace, "cfg")["data"] == {"version": "3"}


def test_unpin_turns_automated_sync_back_on_only_if_the_pin_turned_it_off(
        repo, make_app, sync_queue):
    first = repo.push({"cfg.yaml": configmap("cfg")})
    app = until(lambda: refreshed(make_app(repo)), lambda a: a.sync_status == "OutOfSync")
    assert operations.run(services.request_sync(app, enqueue=False).pk).phase == "Succeeded"
    entry = fresh(app).history.get(sha=first)

    app = fresh(app)  # automated off from the start: a pin and unpin leave it off
    operations.run(services.rollback(app, entry, mode="pin").pk)
    services.unpin(fresh(app))
    assert (fresh(app).automated, fresh(app).pinned_revision) == (False, "")

    Application.objects.filter(pk=app.pk).update(automated=True)
    app = fresh(app)
    operations.run(services.rollback(app, entry, mode="pin").pk)
    operations.run(services.rollback(fresh(app), entry, mode="pin").pk)  # a second pin remembers
    app = fresh(app)
    services.unpin(app)
    assert (app.automated, app.resume_automated, app.pinned_revision) == (True, False, "")
