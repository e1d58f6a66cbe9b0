"""An application's life on real parts: Git over smart HTTP, the control plane, PostgreSQL, Redis.

Each test drives the same services the UI, API and jobs call, and checks what a user would see:
the app's sync and health status, its conditions, its history, and the objects in the cluster.
"""
import subprocess
from datetime import timedelta
from pathlib import Path

import django_rq
import pytest
from django.utils import timezone

from apps.applications import operations, queueing, refreshing, services
from apps.applications.models import Application, Operation
from apps.clusters import services as clusters
from apps.clusters.models import Cluster
from apps.repositories.models import Repository
from tests.appstack import (DeployRepo, live, read_only_token, refreshed, run_worker,
                           sync_and_wait, unique_ids)
from tests.engine.manifests import configmap, deployment, job, service
from tests.waiting import until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(900)]


# --- the core loop -----------------------------------------------------------------------------
def test_plain_app_goes_from_missing_to_synced_and_healthy(repo, make_app):
    sha = repo.push({"app/web.yaml": [deployment("web", replicas=2), service("web")],
                     "app/config.json": '{"apiVersion": "v1", "kind": "ConfigMap", '
                                        '"metadata": {"name": "cfg"}, "data": {"a": "1"}}'})
    app = refreshed(make_app(repo, path="app"))
    assert (app.sync_status, app.health_status, app.target_sha) == ("OutOfSync", "Missing", sha)
    assert len(app.resources) == 3 and app.conditions == []

    op = sync_and_wait(app)
    assert op.phase == "Succeeded", op.message
    app = until(lambda: refreshed(app), lambda a: a.health_status == "Healthy")
    assert (app.sync_status, app.health_status, app.synced_sha) == ("Synced", "Healthy", sha)
    assert live(app, "apps/v1", "Deployment", "web")["status"]["availableReplicas"] == 2
    entry = app.history.get()
    assert (entry.sha, entry.operation_id) == (sha, op.pk)


def test_webhook_push_syncs_the_new_image_through_a_worker(repo, make_app, client, git_server,
                                                           settings):
    repo.push({"web.yaml": deployment("web")})
    app = make_app(repo, automated=True, prune=True)
    sync_and_wait(app)

    repo.push({"web.yaml": deployment("web", image="nginx:1.28")})
    payload = {"object_kind": "push", "ref": "refs/heads/main",
               "project": {"git_http_url": repo.url}, "repository": {"git_http_url": repo.url}}
    response = client.post("/api/webhook/git", payload, content_type="application/json",
                           headers={"X-Gitlab-Event": "Push Hook",
                                    "X-Gitlab-Token": settings.GITOPS_UI_WEBHOOK_SECRET})
    assert response.status_code == 202, response.content
    assert django_rq.get_queue("sync").count >= 1
    run_worker()
    image = live(app, "apps/v1", "Deployment", "web")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "nginx:1.28"
    app.refresh_from_db()
    assert app.sync_status == "Synced" and app.operations.first().automated


def test_file_deleted_in_git_is_pruned(repo, make_app):
    repo.push({"a.yaml": configmap("a"), "b.yaml": configmap("b")})
    app = make_app(repo, automated=True, prune=True)
    refreshed(app)  # the automated sync runs
    assert live(app, "v1", "ConfigMap", "b") is not None

    repo.push({}, delete=["b.yaml"])
    app = refreshed(app)
    gone = until(lambda: live(app, "v1", "ConfigMap", "b"), lambda obj: obj is None)
    assert gone is None
    assert live(app, "v1", "ConfigMap", "a") is not None
    pruned = [r for r in app.operations.first().resources if r["action"] == "prune"]
    assert [(r["name"], r["status"]) for r in pruned] == [("b", "Pruned")]


def test_hand_edit_is_reverted_by_self_heal_via_the_watch(repo, make_app):
    repo.push({"web.yaml": deployment("web", replicas=2)})
    app = make_app(repo, automated=True, self_heal=True)
    refreshed(app)
    engine = clusters.runtime(app.cluster).cluster
    deployments = engine.resource_for("apps/v1", "Deployment")
    queue = django_rq.get_queue("background")  # nobody clicked: behind pushes and clicks
    queue.empty()
    refreshing.forget_refresh_requests(app.name)  # the refresh queued by the sync's own events
    queue.connection.delete(queueing.CHANGED_JOB_FLAG)  # its job went with the queue

    engine.request("PATCH", deployments.path(app.namespace, "web"), body={"spec": {"replicas": 7}},
                   content_type="application/merge-patch+json")
    # The watch cache of this process sees the edit and queues a refresh of the app.
    assert until(lambda: queue.count, lambda n: n > 0, timeout=10) > 0
    run_worker()
    assert live(app, "apps/v1", "Deployment", "web")["spec"]["replicas"] == 2
    assert app.operations.filter(automated=True).count() == 2


def test_a_commit_found_while_an_older_sync_runs_is_synced_after_it(repo, make_app):
    """A push's refresh finds the app's sync of an older commit still running, so it cannot
    start one; the refresh that this sync's writes ask for then syncs the newer commit."""
    repo.push({"cfg.yaml": configmap("cfg", k="1")})
    app = make_app(repo, automated=True)
    refreshed(app)
    assert live(app, "v1", "ConfigMap", "cfg")["data"] == {"k": "1"}
    older = repo.push({"cfg.yaml": configmap("cfg", k="2")})
    running = services.request_sync(app, revision=older, enqueue=False)
    repo.push({"cfg.yaml": configmap("cfg", k="3")})
    app = refreshed(app)  # the push: OutOfSync, and the automated sync cannot start yet
    assert app.sync_status == "OutOfSync" and app.operations.count() == 2

    background = django_rq.get_queue("background")
    background.empty()
    refreshing.forget_refresh_requests(app.name)  # what the first sync's events asked for
    background.connection.delete(queueing.CHANGED_JOB_FLAG)
    operations.run(running.pk)  # the older commit is applied; the refresh after it does not sync
    assert live(app, "v1", "ConfigMap", "cfg")["data"] == {"k": "2"}

    # The watch of this process saw the sync's write and asked for a background refresh.
    assert until(lambda: background.count, lambda n: n > 0, timeout=10) > 0
    for job in background.get_jobs():
        background.remove(job)
        job.perform()
    [automated] = app.operations.filter(phase=Operation.Phase.PENDING, automated=True)
    operations.run(automated.pk)
    assert live(app, "v1", "ConfigMap", "cfg")["data"] == {"k": "3"}


def test_drift_without_self_heal_is_shown_not_undone(repo, make_app):
    repo.push({"web.yaml": deployment("web", replicas=2)})
    app = make_app(repo, automated=True)
    refreshed(app)
    engine = clusters.runtime(app.cluster).cluster
    engine.request("PATCH", engine.resource_for("apps/v1", "Deployment").path(app.namespace, "web"),
                   body={"spec": {"replicas": 3}}, content_type="application/merge-patch+json")
    app = until(lambda: refreshed(app), lambda a: a.sync_status == "OutOfSync")
    assert app.resources[0]["differences"] == ["/spec/replicas"]
    assert live(app, "apps/v1", "Deployment", "web")["spec"]["replicas"] == 3
    assert app.operations.count() == 1


# --- rollback ----------------------------------------------------------------------------------
def test_rollback_by_pinning_the_earlier_revision(repo, make_app, admin_user):
    first = repo.push({"web.yaml": deployment("web", image="nginx:1.26")})
    app = make_app(repo, automated=True)
    refreshed(app)
    repo.push({"web.yaml": deployment("web", image="nginx:1.27")})
    app = refreshed(app)
    assert app.history.count() == 2
    earlier = app.history.get(sha=first)

    op = services.rollback(app, earlier, admin_user, mode="pin")
    op = operations.run(op.pk)
    assert op.phase == "Succeeded" and op.kind == "rollback"
    app = refreshed(app)
    assert (app.pinned_revision, app.automated, app.synced_sha) == (first, False, first)
    assert _image(app) == "nginx:1.26"
    assert app.sync_status == "Synced"  # compared with the pinned commit, not the branch


def test_rollback_in_git_commits_a_revert_and_auto_sync_applies_it(repo, make_app, admin_user):
    first = repo.push({"web.yaml": deployment("web", image="nginx:1.26")})
    app = make_app(repo, automated=True)
    refreshed(app)
    repo.push({"web.yaml": deployment("web", image="nginx:1.27"), "extra.yaml": configmap("x")})
    app = refreshed(app)
    earlier = app.history.get(sha=first)

    new_sha = services.rollback(app, earlier, admin_user, mode="git")
    app = refreshed(app)
    assert app.automated and not app.pinned_revision
    assert app.synced_sha == new_sha != first
    assert _image(app) == "nginx:1.26"
    log = subprocess.run(["git", "ls-remote", repo.auth_url, "refs/heads/main"],
                         capture_output=True, text=True).stdout
    assert log.startswith(new_sha)


def _image(app):
    return live(app, "apps/v1", "Deployment", "web")["spec"]["template"]["spec"]["containers"][0]["image"]


# --- rendering tools ---------------------------------------------------------------------------
def test_kustomize_source_renders_and_syncs(repo, make_app):
    repo.push({
        "base/kustomization.yaml": "resources:\n- web.yaml\n",
        "base/web.yaml": deployment("web"),
        "overlays/prod/kustomization.yaml":
            "resources:\n- ../../base\nnamePrefix: prod-\nimages:\n- name: nginx\n  newTag: '1.28'\n",
    })
    app = make_app(repo, path="overlays/prod")
    op = sync_and_wait(refreshed(app))
    assert op.phase == "Succeeded", op.message
    dep = live(app, "apps/v1", "Deployment", "prod-web")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.28"
    assert refreshed(app).sync_status == "Synced"


def test_helm_source_renders_with_values_and_parameters(repo, make_app):
    template = ("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}-web\n"
                "spec:\n  replicas: {{ .Values.replicas }}\n  selector:\n    matchLabels: {app: web}\n"
                "  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n"
                "      - name: web\n        image: {{ .Values.image }}\n")
    repo.push({"chart/Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
               "chart/values.yaml": "replicas: 1\nimage: nginx:1.26\n",
               "chart/values-prod.yaml": "replicas: 3\n",
               "chart/templates/web.yaml": template})
    app = make_app(repo, path="chart", source={"helm": {
        "release_name": "shop", "values_files": ["values-prod.yaml"],
        "parameters": {"image": "nginx:1.29"}}})
    op = sync_and_wait(refreshed(app))
    assert op.phase == "Succeeded", op.message
    dep = live(app, "apps/v1", "Deployment", "shop-web")
    assert dep["spec"]["replicas"] == 3
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.29"


# --- waves and hooks through the app -----------------------------------------------------------
def test_failing_pre_sync_hook_stops_the_sync_and_is_reported(repo, make_app, settings):
    settings.GITOPS_UI_SYNC_HEALTH_TIMEOUT = 60
    repo.push({"migrate.yaml": job("migrate", {"argocd.argoproj.io/hook": "PreSync"},
                                   node_selector={"nowhere": "x"}, deadline=2),
               "cfg.yaml": configmap("cfg")})
    op = sync_and_wait(refreshed(make_app(repo)))
    assert op.phase == "Failed" and "migrate" in op.message
    app = Application.objects.get(pk=op.application_id)
    assert live(app, "v1", "ConfigMap", "cfg") is None
    app = refreshed(app)
    assert any(c["type"] == "SyncError" and "migrate" in c["message"] for c in app.conditions)
    assert app.history.count() == 0


# --- bad input ---------------------------------------------------------------------------------
def test_malformed_yaml_is_a_condition_and_the_last_state_is_kept(repo, make_app):
    repo.push({"web.yaml": deployment("web")})
    app = make_app(repo, automated=True)
    app = until(lambda: refreshed(app), lambda a: a.health_status == "Healthy")
    assert app.sync_status == "Synced"
    repo.push({"web.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [oops\n"})
    app = refreshed(app)
    # Not compared with the new commit: sync Unknown (not a stale "Synced"); the live health and
    # the resource list are still known and kept.
    assert app.sync_status == "Unknown" and app.health_status == "Healthy"
    assert [r["name"] for r in app.resources] == ["web"]
    [cond] = app.conditions
    assert cond["type"] == "ComparisonError"
    assert cond["message"].startswith("web.yaml:5: invalid YAML")  # file and line
    assert live(app, "apps/v1", "Deployment", "web") is not None
    assert app.operations.count() == 1  # nothing was synced from the broken commit


def test_unknown_kind_and_validation_errors_are_conditions(repo, make_app):
    bad = deployment("bad")
    bad["spec"]["replicas"] = "three"
    repo.push({"widget.yaml": {"apiVersion": "example.com/v1", "kind": "Widget",
                               "metadata": {"name": "w"}},
               "bad.yaml": bad, "ok.yaml": configmap("ok")})
    app = refreshed(make_app(repo, automated=True))
    messages = " | ".join(c["message"] for c in app.conditions)
    assert "Widget" in messages and "CustomResourceDefinition" in messages
    assert app.operations.count() == 0  # no automated sync from a broken comparison
    repo.push({}, delete=["widget.yaml"])
    op = sync_and_wait(refreshed(app))
    assert op.phase == "Failed" and "replicas" in op.message
    assert live(app, "v1", "ConfigMap", "ok") is None  # nothing half-applied
    app = refreshed(app)
    assert any(c["type"] == "ComparisonError" and "replicas" in c["message"] for c in app.conditions)


def test_unreachable_cluster_and_git_server_are_conditions(repo, make_app, git_server):
    repo.push({"cfg.yaml": configmap("cfg")})
    app = make_app(repo)
    from tests.localstack.process import free_port

    app.cluster = Cluster.objects.create(name=f"gone-{next(unique_ids)}", server=f"https://127.0.0.1:{free_port()}",
                                         token="secret-token-abc", insecure=True)
    app.save()
    app = refreshed(app)
    [cond] = app.conditions
    assert cond["type"] == "ClusterError" and "cannot reach" in cond["message"]
    assert "secret-token-abc" not in cond["message"]
    assert (app.sync_status, app.health_status) == ("Unknown", "Unknown")

    Repository.objects.filter(pk=app.repository_id).update(url=repo.url.replace(
        str(git_server.port), str(free_port())))
    app = refreshed(app)
    assert app.conditions[0]["type"] == "ComparisonError"
    assert "cannot reach" in app.conditions[0]["message"]


def test_wrong_git_password_is_a_condition_without_the_password(repo, make_app):
    repo.push({"cfg.yaml": configmap("cfg")})
    app = make_app(repo)
    repository = app.repository
    repository.password = "not-the-password-xyz"
    repository.save()
    app = refreshed(app)
    assert "authentication failed" in app.conditions[0]["message"]
    assert "not-the-password-xyz" not in app.conditions[0]["message"]


def test_rbac_forbidden_fails_the_sync_with_the_cause(repo, make_app, kube, cluster_record):
    repo.push({"cfg.yaml": configmap("cfg")})
    app = make_app(repo, sync_options=[])
    engine = clusters.runtime(cluster_record).cluster
    engine.request("POST", "/api/v1/namespaces", body={"metadata": {"name": app.namespace}})
    token = read_only_token(engine, app.namespace)
    app.cluster = Cluster.objects.create(name=f"viewer-{next(unique_ids)}", server=kube.url,
                                         token=token, ca_data=(Path(kube.pki) / "ca.crt").read_text())
    app.save()
    app = refreshed(app)
    [cond] = app.conditions
    assert cond["type"] == "ComparisonError" and "forbidden" in cond["message"]
    op = sync_and_wait(app)
    assert op.phase == "Failed"
    assert "forbidden" in op.message.lower()
    assert token not in op.message


def test_one_bad_app_does_not_stop_the_others(repo, make_app, git_server, tmp_path, name):
    repo.push({"cfg.yaml": configmap("cfg")})
    good = make_app(repo)
    broken_repo = DeployRepo(git_server, name + "-broken", tmp_path)
    broken_repo.push({"x.yaml": "kind: [\n"})
    broken = Application.objects.create(
        name=name + "-b", project=good.project, cluster=good.cluster, namespace=name + "-b",
        repository=Repository.objects.create(url=broken_repo.url, username=git_server.username,
                                             password=git_server.password))
    # Due once an interval has passed since they were created (their own refresh jobs did not run).
    Application.objects.filter(pk__in=[good.pk, broken.pk]).update(
        created_at=timezone.now() - timedelta(days=1))
    assert refreshing.refresh_due() == 2
    good.refresh_from_db()
    broken.refresh_from_db()
    assert good.sync_status == "OutOfSync" and good.conditions == []
    assert broken.conditions[0]["type"] == "ComparisonError"

    # Refreshed just now: not due again until the interval (plus the app's jitter) has passed.
    from django.conf import settings
    assert refreshing.refresh_due() == 0
    Application.objects.filter(pk=good.pk).update(
        reconciled_at=good.reconciled_at - timedelta(seconds=settings.GITOPS_UI_REFRESH_INTERVAL * 1.11))
    assert refreshing.refresh_due() == 1


# --- operations --------------------------------------------------------------------------------
def test_one_operation_at_a_time_and_terminate(repo, make_app, settings):
    settings.GITOPS_UI_OPERATION_HEARTBEAT = 0.2
    # A PreSync hook that never finishes: its pod can be scheduled nowhere.
    repo.push({"wait.yaml": job("wait", {"argocd.argoproj.io/hook": "PreSync"},
                                node_selector={"nowhere": "x"}), "cfg.yaml": configmap("cfg")})
    app = refreshed(make_app(repo))
    op = services.request_sync(app, enqueue=False)
    with pytest.raises(services.OperationInProgress):
        services.request_sync(app, enqueue=False)

    import threading
    runner = threading.Thread(target=operations.run, args=(op.pk,))
    runner.start()
    until(lambda: Operation.objects.get(pk=op.pk).phase, lambda p: p == "Running", timeout=10)
    services.terminate(Operation.objects.get(pk=op.pk))
    runner.join(30)
    op.refresh_from_db()
    assert op.phase == "Terminated"
    assert live(app, "v1", "ConfigMap", "cfg") is None
    assert services.request_sync(app, enqueue=False).phase == "Pending"  # free again


def test_operation_of_a_killed_worker_is_marked_error(repo, make_app):
    repo.push({"cfg.yaml": configmap("cfg")})
    app = make_app(repo)
    op = services.request_sync(app, enqueue=False)
    long_ago = timezone.now() - timedelta(minutes=10)
    Operation.objects.filter(pk=op.pk).update(phase="Running", started_at=long_ago,
                                              heartbeat_at=long_ago)
    assert services.reap_stale_operations() == 1
    op.refresh_from_db()
    assert op.phase == "Error" and "no heartbeat" in op.message
    assert sync_and_wait(app).phase == "Succeeded"


def test_automated_sync_does_not_loop_on_a_failed_revision(repo, make_app, settings):
    settings.GITOPS_UI_RETRY_BACKOFF = 0
    bad = job("bad-hook", {"argocd.argoproj.io/hook": "PreSync"},
              node_selector={"nowhere": "x"}, deadline=1)
    repo.push({"hook.yaml": bad, "cfg.yaml": configmap("cfg")})
    app = make_app(repo, automated=True, retry_limit=1)
    for _ in range(4):
        refreshed(app)
    automated = app.operations.filter(automated=True)
    assert automated.count() == 2  # the first try and one retry, then it stops
    assert set(automated.values_list("phase", flat=True)) == {"Failed"}


# --- live updates ------------------------------------------------------------------------------
def test_sync_progress_reaches_the_application_websocket(repo, make_app, admin_user):
    from asgiref.sync import async_to_sync, sync_to_async
    from channels.routing import URLRouter
    from channels.testing import WebsocketCommunicator

    from gitops_ui.routing import websocket_urlpatterns

    repo.push({"cfg.yaml": configmap("cfg")})
    app = make_app(repo)

    async def scenario():
        communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns),
                                             f"/ws/applications/{app.name}/")
        communicator.scope["user"] = admin_user
        connected, _ = await communicator.connect()
        assert connected
        try:
            await sync_to_async(lambda: sync_and_wait(refreshed(app)))()
            events = []
            # (A receive that times out cancels the consumer, so read until the last expected one.)
            while not any(e["type"] == "application.status" and e["sync"] == "Synced"
                          for e in events):
                events.append(await communicator.receive_json_from(timeout=10))
            return events
        finally:
            await communicator.disconnect()

    events = async_to_sync(scenario)()
    kinds = [(e["type"], e.get("phase") or e.get("sync")) for e in events]
    assert ("operation", "Running") in kinds and ("operation", "Succeeded") in kinds
    assert ("application.status", "Synced") in kinds

