"""Deleting an application, as Argo CD does, on real parts (git server, control plane, Redis).

Cascading (foreground by default, or background) deletes what the app deployed, read back from
the API server, and keeps what says Delete=false and the namespace CreateNamespace made;
non-cascading leaves everything. Through the REST API, the admin and `app_delete`, with the
roles' permission check; a deletion that cannot reach the cluster, or is refused by it, keeps
the application with a condition naming the cause.
"""
import contextlib
import io
import socket
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from apps.applications import services
from apps.applications.models import Application, Operation
from apps.clusters import services as clusters
from apps.clusters.models import Cluster
from apps.engine.resources import TRACKING_ANNOTATION
from tests.engine.manifests import configmap, deployment
from tests.waiting import until

from tests.appstack import live, read_only_token, refreshed, run_worker, sync_and_wait, unique_ids
from .test_roles import client_for, team  # noqa: F401
from .test_status import flaky_cluster, proxy  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]
KEEP = {"argocd.argoproj.io/sync-options": "Delete=false"}


def deployed(repo, make_app, **fields) -> Application:
    """An app that synced a Deployment, two ConfigMaps, one ConfigMap that says Delete=false and
    one that says Prune=false (which protects from pruning only, as in Argo CD)."""
    repo.push({"app.yaml": [deployment("web"), configmap("cfg-a"), configmap("cfg-b"),
                            configmap("keep", annotations=KEEP),
                            configmap("no-prune", annotations={
                                "argocd.argoproj.io/sync-options": "Prune=false"})]})
    app = make_app(repo, **fields)
    op = sync_and_wait(app)
    assert op.phase == "Succeeded", op.message
    app = refreshed(app)
    assert live(app, "apps/v1", "Deployment", "web") is not None
    return app


def replica_sets(app) -> list[dict]:
    engine = clusters.runtime(app.cluster).cluster
    return engine.list(engine.resource_for("apps/v1", "ReplicaSet"), app.namespace)[0]


def hold(app, replica_set: dict, held: bool = True) -> None:
    """A finalizer on the ReplicaSet keeps it (and so a foreground deletion of its Deployment)
    until released."""
    engine = clusters.runtime(app.cluster).cluster
    path = engine.resource_for("apps/v1", "ReplicaSet").path(app.namespace,
                                                           replica_set["metadata"]["name"])
    engine.request("PATCH", path, content_type="application/merge-patch+json", body={
        "metadata": {"finalizers": ["gitops-ui.test/hold"] if held else None}})


def namespace_exists(app) -> bool:
    engine = clusters.runtime(app.cluster).cluster
    return engine.get(engine.resource_for("v1", "Namespace"), None, app.namespace) is not None


def shows_live_objects(app) -> None:
    """As after a refresh that found the app's objects (rows made without a cluster)."""
    Application.objects.filter(pk=app.pk).update(resources=[{
        "group": "", "kind": "ConfigMap", "namespace": app.namespace, "name": "cfg",
        "health": "Healthy"}])


def _started(proxy) -> bool:
    try:
        proxy.start()
        return True
    except OSError:
        return False


def command(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


# --- cascading ---------------------------------------------------------------------------------
def test_cascading_delete_through_the_api_removes_what_the_app_deployed(
        repo, make_app, admin_client, sync_queue):
    app = deployed(repo, make_app)
    assert replica_sets(app)

    answer = admin_client.delete(f"/api/applications/{app.name}")
    assert answer.status_code == 202, answer.content
    body = answer.json()
    assert body["cascade"] == "foreground" and body["operation"]["kind"] == "delete"
    # While it is queued or runs: the app says so, and no sync can start.
    shown = admin_client.get(f"/api/applications/{app.name}").json()
    assert shown["deletion"] == "foreground"
    synced = admin_client.post(f"/api/applications/{app.name}/sync", {},
                               content_type="application/json")
    assert synced.status_code == 409

    run_worker()  # a real RQ worker process runs the queued deletion

    assert admin_client.get(f"/api/applications/{app.name}").status_code == 404
    assert not Operation.objects.filter(application_id=app.pk).exists()
    assert live(app, "apps/v1", "Deployment", "web") is None
    for obj_name in ("cfg-a", "cfg-b", "no-prune"):
        assert live(app, "v1", "ConfigMap", obj_name) is None, obj_name
    assert replica_sets(app) == []  # the Deployment's dependents went with it
    kept = live(app, "v1", "ConfigMap", "keep")
    assert kept is not None and kept["metadata"].get("deletionTimestamp") is None
    assert namespace_exists(app)  # made by CreateNamespace: not the app's to delete


def test_foreground_waits_for_dependents_within_its_bound(repo, make_app, settings):
    app = deployed(repo, make_app)
    [replica_set] = replica_sets(app)
    hold(app, replica_set)
    settings.GITOPS_UI_SYNC_HEALTH_TIMEOUT = 3  # the bound on one wave

    op = services.run_deletion(services.delete_application(app, enqueue=False).pk)
    assert op.phase == "Failed", op.message
    assert "still present 3 s after being deleted: Deployment web" in op.message
    app = Application.objects.get(pk=app.pk)
    assert app.deletion == "" and app.conditions[-1]["type"] == "DeletionError"
    waiting = live(app, "apps/v1", "Deployment", "web")  # foreground: until its ReplicaSet goes
    assert waiting["metadata"]["deletionTimestamp"]
    assert live(app, "v1", "ConfigMap", "cfg-a") is None  # the same wave: deleted meanwhile

    hold(app, replica_set, held=False)
    settings.GITOPS_UI_SYNC_HEALTH_TIMEOUT = 60
    op = services.run_deletion(services.delete_application(app, enqueue=False).pk)
    assert op.phase == "Succeeded", op.message
    assert live(app, "apps/v1", "Deployment", "web") is None and replica_sets(app) == []


def test_background_delete_through_the_command_and_argo_cd_spelling_in_the_api(
        repo, make_app, admin_client, sync_queue):
    app = deployed(repo, make_app)
    [replica_set] = replica_sets(app)
    hold(app, replica_set)

    out = command("app_delete", app.name, "--cascade", "background", "--wait")
    assert "delete Succeeded" in out and "keep: DeleteSkipped" in out, out
    assert not Application.objects.filter(pk=app.pk).exists()
    assert live(app, "apps/v1", "Deployment", "web") is None
    assert live(app, "v1", "ConfigMap", "cfg-a") is None
    assert live(app, "v1", "ConfigMap", "keep") is not None
    # Background: the Deployment went at once; the garbage collector deletes its ReplicaSet after.
    [left] = until(lambda: replica_sets(app),
                   lambda found: found and found[0]["metadata"].get("deletionTimestamp"))
    assert left["metadata"]["deletionTimestamp"]
    hold(app, replica_set, held=False)

    # Argo CD's spelling: cascade=true with propagationPolicy; what it refuses, refused here too.
    again = make_app(repo)  # the same name, the same commit
    assert sync_and_wait(again).phase == "Succeeded"
    again = refreshed(again)
    url = f"/api/applications/{again.name}"
    wrong = admin_client.delete(f"{url}?cascade=false&propagationPolicy=background")
    assert wrong.status_code == 400 and "cascading is off" in wrong.json()["detail"]
    unknown = admin_client.delete(f"{url}?cascade=sideways")
    assert unknown.status_code == 400 and "foreground, background" in unknown.json()["detail"]
    answer = admin_client.delete(f"{url}?cascade=true&propagationPolicy=background")
    assert answer.status_code == 202, answer.content
    assert answer.json()["cascade"] == "background"
    run_worker()
    assert not Application.objects.filter(pk=again.pk).exists()
    assert live(again, "v1", "ConfigMap", "cfg-b") is None


def test_non_cascading_delete_leaves_everything_in_the_cluster(repo, make_app, admin_client):
    app = deployed(repo, make_app)

    answer = admin_client.delete(f"/api/applications/{app.name}?cascade=false")
    assert answer.status_code == 204, answer.content
    assert not Application.objects.filter(pk=app.pk).exists()
    for obj_name in ("cfg-a", "cfg-b", "keep", "no-prune"):
        left = live(app, "v1", "ConfigMap", obj_name)
        # As Argo CD leaves its tracking label: an app of the same name adopts them again.
        assert left["metadata"]["annotations"][TRACKING_ANNOTATION].startswith(f"{app.name}:")
    assert live(app, "apps/v1", "Deployment", "web") is not None


# --- failures keep the app ---------------------------------------------------------------------
def test_delete_while_the_cluster_is_unreachable_keeps_the_app_with_the_cause(
        repo, make_app, flaky_cluster, proxy, cluster_record):
    repo.push({"cfg.yaml": configmap("cfg")})
    app = make_app(repo)
    app.cluster = flaky_cluster
    app.save()
    assert sync_and_wait(app).phase == "Succeeded"
    app = refreshed(app)

    proxy.stop()
    op = services.delete_application(app, cascade=services.FOREGROUND, enqueue=False)
    op = services.run_deletion(op.pk)
    assert op.phase == "Error", op.message
    app = Application.objects.get(pk=app.pk)
    assert app.deletion == ""
    [cond] = [c for c in app.conditions if c["type"] == "DeletionError"]
    assert flaky_cluster.name in cond["message"] and "kept" in cond["message"]
    direct = clusters.runtime(cluster_record).cluster
    assert direct.get(direct.resource_for("v1", "ConfigMap"), app.namespace, "cfg") is not None

    # The stopped proxy's listener lives on in its blocked accept() until a connection wakes
    # it (the refresh probes do that in test_status); then the cluster can come back.
    with contextlib.suppress(OSError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=2).close()
    until(lambda: _started(proxy), bool, timeout=10)
    app = until(lambda: refreshed(app), lambda a: a.sync_status == "Synced", timeout=60)
    op = services.run_deletion(services.delete_application(app, enqueue=False).pk)
    assert op.phase == "Succeeded", op.message
    assert not Application.objects.filter(pk=app.pk).exists()
    assert direct.get(direct.resource_for("v1", "ConfigMap"), app.namespace, "cfg") is None


def test_delete_the_cluster_refuses_keeps_the_app_and_its_objects(
        repo, make_app, kube, cluster_record):
    repo.push({"cfg.yaml": configmap("cfg")})
    app = make_app(repo)
    assert sync_and_wait(app).phase == "Succeeded"
    app = refreshed(app)
    engine = clusters.runtime(cluster_record).cluster
    token = read_only_token(engine, app.namespace)  # reads ConfigMaps, deletes nothing
    app.cluster = Cluster.objects.create(name=f"viewer-{next(unique_ids)}", server=kube.url, token=token,
                                         ca_data=(Path(kube.pki) / "ca.crt").read_text())
    app.save()

    with pytest.raises(SystemExit):
        command("app_delete", app.name, "--wait")
    app = Application.objects.get(pk=app.pk)
    [cond] = [c for c in app.conditions if c["type"] == "DeletionError"]
    assert "forbidden" in cond["message"].lower() and "ConfigMap" in cond["message"]
    assert token not in cond["message"]
    assert engine.get(engine.resource_for("v1", "ConfigMap"), app.namespace, "cfg") is not None


# --- who may delete ----------------------------------------------------------------------------
def test_viewers_and_operators_cannot_delete(team, world, sync_queue):  # noqa: F811
    shows_live_objects(world.app)
    for role in ("viewer", "operator"):
        client = client_for(team[role])
        for query in ("", "?cascade=background", "?cascade=false"):
            refused = client.delete(f"/api/applications/shop{query}")
            assert refused.status_code == 403, (role, query, refused.content)
            assert refused.json()["detail"] == f"{role} may not delete application shop"
        with pytest.raises(CommandError, match=f"{role} may not delete application shop"):
            command("app_delete", "shop", "--as", role, "--cascade", "false")
    assert Application.objects.get(pk=world.app.pk).deletion == ""
    assert not Operation.objects.exists() and len(sync_queue) == 0

    # A project admin may: the deletion is queued for a worker.
    out = command("app_delete", "shop", "--as", "lead")
    assert "queued" in out
    [op] = Operation.objects.filter(application=world.app)
    assert (op.kind, op.options, op.initiated_by) == ("delete", {"cascade": "foreground"},
                                                      team["lead"])
    assert [job.func_name for job in sync_queue.jobs] == [
        "apps.applications.jobs.delete_application"]


def test_the_admin_offers_the_choice_and_cascades_by_default(admin_client, world, sync_queue):
    shows_live_objects(world.app)
    services.request_sync(world.app, enqueue=False)  # a record that goes with the app
    Operation.objects.update(phase="Succeeded")
    url = f"/admin/applications/application/{world.app.pk}/delete/"

    page = admin_client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="cascade" value="foreground" checked' in html
    assert 'value="background"' in html and 'value="false"' in html
    assert "permission to delete" not in html  # its operations go with it

    answer = admin_client.post(url, {"post": "yes"})  # no choice sent: foreground
    assert answer.status_code == 302
    app = Application.objects.get(pk=world.app.pk)
    assert app.deletion == "foreground"
    assert Operation.objects.get(kind="delete").options == {"cascade": "foreground"}

    # Another deletion while this one is queued is refused with the reason, nothing changes.
    answer = admin_client.post(url, {"post": "yes", "cascade": "false"}, follow=True)
    assert "was not deleted" in answer.content.decode()
    assert Application.objects.filter(pk=world.app.pk).exists()

    Operation.objects.filter(kind="delete").delete()  # as if it never ran
    answer = admin_client.post(url, {"post": "yes", "cascade": "false"})
    assert answer.status_code == 302
    assert not Application.objects.filter(pk=world.app.pk).exists()
