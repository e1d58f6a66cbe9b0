"""A flood of webhook deliveries for one commit (distinct delivery ids: GitLab redelivering, or
many projects' hooks), on the real git server, Redis, PostgreSQL and control plane: the apps are
refreshed once, each later delivery costs at most one ls-remote (none when the payload's `after`
was handled), a new commit is still applied, an app whose refresh failed at the commit is
retried by the next delivery, an edited app still gets its own refresh, and workers running the
jobs of several deliveries at once refresh a new commit once.

The refresh jobs the webhook queues are run in this process, as the worker would run them.
Refreshes are counted by the apps' reconciled_at (every refresh sets it), ls-remote calls by the
git server's access log."""
import threading
import time
import uuid

import django_rq
import pytest
from django.db import connection

from apps.applications import jobs, refreshing, services
from apps.applications.models import Application, Project
from apps.clusters.models import Cluster
from tests.waiting import until

from . import test_polling
from .factories import WEBHOOK_SECRET, make_app
from .test_polling import Remote, configmap

clean_polling = test_polling.clean_polling  # the fixture: no poll state left by another test

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]


def deliver(client, remote, after: str | None):
    """One GitLab push delivery of `remote`'s main branch, with its own delivery id."""
    body = {"object_kind": "push", "ref": "refs/heads/main", "before": "0" * 40,
            "project": {"git_http_url": remote.url, "default_branch": "main"}}
    if after is not None:
        body["after"] = after
    return client.post("/api/webhook/git", body, content_type="application/json",
                       HTTP_X_GITLAB_EVENT="Push Hook", HTTP_X_GITLAB_TOKEN=WEBHOOK_SECRET,
                       HTTP_X_GITLAB_EVENT_UUID=str(uuid.uuid4()))


def run_refresh_jobs(queue) -> int:
    """Run the queued repository refreshes here (what a worker does); drop anything else (watch
    events queue an app's own refresh: not what is counted). Returns how many ran."""
    ran = 0
    for job in queue.get_jobs():
        if job.func_name == "apps.applications.jobs.refresh_repository":
            jobs.refresh_repository(*job.args)
            ran += 1
    queue.empty()
    redis = django_rq.get_connection("sync")
    for key in redis.scan_iter("gitops-ui:refresh-queued:*"):  # dropped: not waiting any more
        redis.delete(key)
    return ran


def reconciled(*names) -> dict:
    return dict(Application.objects.filter(name__in=names).values_list("name", "reconciled_at"))


def stable(count) -> int:
    """The count once the access log stopped growing (it is written just after each answer)."""
    last = count()
    while True:
        time.sleep(0.3)
        if (now := count()) == last:
            return now
        last = now


def settled(count, expected: int) -> int:
    """The access log is written just after each answer: wait for `expected`, then check that
    nothing more comes."""
    until(count, lambda n: n >= expected, timeout=10)
    return until(count, lambda n: n > expected, timeout=0.5)


@pytest.fixture
def setup(git_server, kube, tmp_path, clean_polling, sync_queue):
    remote = Remote(git_server, tmp_path)
    sha = remote.commit({"cm.yaml": configmap("one")})
    repo = remote.record()
    repo.webhook_secret = WEBHOOK_SECRET
    repo.save()
    cluster = Cluster.objects.create(name=f"local-{remote.name}", auth=Cluster.Auth.KUBECONFIG,
                                     kubeconfig=kube.kubeconfig_text())
    project = Project.objects.get_or_create(name="default")[0]
    return remote, sha, repo, cluster, project


def live_value(kube, namespace):
    from apps.engine.cluster import Cluster as Engine

    engine = Engine.from_kubeconfig(kube.kubeconfig_text(), name="flood-test")
    obj = engine.get(engine.resource_for("v1", "ConfigMap"), namespace, "polled")
    return (obj or {}).get("data", {}).get("value")


def test_fifty_deliveries_of_one_commit_refresh_the_apps_once_and_a_new_commit_is_applied(
        client, setup, sync_queue, kube):
    remote, sha, repo, cluster, project = setup
    names = [f"{remote.name}-a", f"{remote.name}-b"]
    for name in names:
        make_app(name, project, repo, cluster, automated=True, prune=True,
                 sync_options=["CreateNamespace=true"])

    first = deliver(client, remote, sha)
    assert first.status_code == 202 and sorted(first.json()["applications"]) == names
    assert run_refresh_jobs(sync_queue) == 1
    assert live_value(kube, names[0]) == "one"  # refreshed and synced
    after_first = reconciled(*names)
    assert all(after_first.values())
    lists = stable(remote.ref_advertisements)

    # 25 deliveries carrying `after`: answered at once, nothing queued, no git call.
    for _ in range(25):
        response = deliver(client, remote, sha)
        assert response.status_code == 200
        assert response.json() == {"applications": [], "already_handled": True}
    assert sync_queue.count == 0
    # 24 without `after` (a generic sender): one job each, one ls-remote each, no refresh.
    for i in range(24):
        assert deliver(client, remote, None).status_code == 202
        assert run_refresh_jobs(sync_queue) == 1
    assert settled(remote.ref_advertisements, lists + 24) == lists + 24
    assert reconciled(*names) == after_first  # 50 deliveries, one refresh of each app

    # An edited app is refreshed through its own path, handled commit or not.
    services.update_application(Application.objects.get(name=names[1]), self_heal=True)
    assert ("apps.applications.jobs.refresh", (names[1],)) in [
        (job.func_name, tuple(job.args)) for job in sync_queue.get_jobs()]
    jobs.refresh(names[1])
    sync_queue.empty()
    assert reconciled(names[1])[names[1]] > after_first[names[1]]
    assert deliver(client, remote, sha).json().get("already_handled") is True

    # A new commit: refreshed and applied.
    new = remote.commit({"cm.yaml": configmap("two")})
    assert deliver(client, remote, new).status_code == 202
    assert run_refresh_jobs(sync_queue) == 1
    assert live_value(kube, names[0]) == "two"
    assert {a.synced_sha for a in Application.objects.filter(name__in=names)} == {new}
    assert deliver(client, remote, new).json().get("already_handled") is True


def test_an_app_whose_refresh_failed_at_the_commit_is_retried_by_the_next_delivery(
        client, setup, sync_queue, kube):
    remote, sha, repo, cluster, project = setup
    down = Cluster.objects.create(name=f"down-{remote.name}", server="https://127.0.0.1:1",
                                  token="t")
    good, broken = f"{remote.name}-good", f"{remote.name}-broken"
    make_app(good, project, repo, cluster, automated=True, sync_options=["CreateNamespace=true"])
    make_app(broken, project, repo, down, automated=True, sync_options=["CreateNamespace=true"])

    assert deliver(client, remote, sha).status_code == 202
    run_refresh_jobs(sync_queue)
    failed_once = reconciled(good, broken)
    assert Application.objects.get(name=broken).sync_status == "Unknown"  # cluster refused
    assert Application.objects.get(name=good).synced_sha == sha

    # The commit is not handled while an app failed at it: the next delivery queues a refresh,
    # which retries that app only.
    lists = stable(remote.ref_advertisements)
    retried = deliver(client, remote, sha)
    assert retried.status_code == 202
    assert run_refresh_jobs(sync_queue) == 1
    assert settled(remote.ref_advertisements, lists + 1) == lists + 1
    now = reconciled(good, broken)
    assert now[good] == failed_once[good] and now[broken] > failed_once[broken]

    # The cause goes away (here: the app now points at a cluster that answers); the next
    # delivery's retry succeeds, after which the commit is handled.
    Application.objects.filter(name=broken).update(cluster=cluster)
    assert deliver(client, remote, sha).status_code == 202
    run_refresh_jobs(sync_queue)
    app = Application.objects.get(name=broken)
    assert app.sync_status != "Unknown" and app.synced_sha == sha, app.conditions
    assert live_value(kube, broken) == "one"
    assert deliver(client, remote, sha).json().get("already_handled") is True
    assert sync_queue.count == 0


def test_deliveries_refreshed_at_once_by_several_workers_refresh_a_new_commit_once(
        client, setup, sync_queue, kube):
    remote, sha, repo, cluster, project = setup
    names = [f"{remote.name}-a", f"{remote.name}-b"]
    for name in names:
        make_app(name, project, repo, cluster, automated=True, sync_options=["CreateNamespace=true"])
    deliver(client, remote, sha)
    run_refresh_jobs(sync_queue)

    new = remote.commit({"cm.yaml": configmap("two")})
    counts = []

    def worker():  # what each worker does with its delivery's job
        try:
            counts.append(refreshing.refresh_repository(repo.pk, "refs/heads/main", "main"))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(counts) == [0, 0, 0, 2]  # one of them refreshed both apps; the others nothing
    assert live_value(kube, names[0]) == "two"
    assert {a.synced_sha for a in Application.objects.filter(name__in=names)} == {new}
