"""One slow thing never stalls the rest, on the real stack: the engine worker as `make run`
starts it (`manage.py engine`), the git server, PostgreSQL, Redis and the control plane.

While one repository's git server hangs (git's own timeout left at its long default) and two
applications' syncs wait on PreSync hooks that never finish, a push to a third application's
repository is applied: the push is not queued behind them, and none of them holds it up."""
import os
import signal
import socket
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import django_rq
import pytest
import yaml
from django.db import connection
from django.utils import timezone

from apps.applications import queueing, refreshing, services
from apps.applications.models import Application, Operation, Project
from apps.clusters.models import Cluster
from apps.engine.cluster import Cluster as Engine
from apps.repositories.models import Repository
from gitops_ui.env import BASE_DIR
from tests.gitcli import git
from tests.waiting import until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

SECRET = "isolation-webhook-secret"


class Remote:
    """A repository on the local git server, with a working clone to commit from."""

    def __init__(self, git_server, workdir: Path, prefix: str):
        self.name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.git_server = git_server
        self.url = git_server.create_repo(self.name)
        self.work = workdir / self.name
        git("clone", "--quiet", git_server.auth_url(self.name), self.work)

    def commit(self, files: dict[str, dict]) -> str:
        for path, obj in files.items():
            (self.work / path).write_text(yaml.safe_dump(obj))
        git("add", "-A", cwd=self.work)
        git("commit", "--quiet", "-m", "change", cwd=self.work)
        git("push", "--quiet", "origin", "HEAD:main", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work).stdout.strip()

    def record(self) -> Repository:
        return Repository.objects.create(url=self.url, username=self.git_server.username,
                                         password=self.git_server.password)


def configmap(name: str, value: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"value": value}}


def hook_that_never_ends(name: str) -> dict:
    """A PreSync Job whose pod no node can take: it stays active, so the sync waits on it for
    the whole health timeout."""
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "annotations": {"argocd.argoproj.io/hook": "PreSync"}},
            "spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never", "nodeSelector": {"no-such-node": "x"},
                "containers": [{"name": "main", "image": "busybox"}]}}}}


@pytest.fixture
def hung_server():
    """A loopback HTTP "git server" that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/hung.git"
    listener.close()


@pytest.fixture
def clean_queues():
    redis = django_rq.get_connection("sync")

    def clear():
        for name in ("sync", "background", "default"):
            django_rq.get_queue(name).empty()
        for key in redis.scan_iter("gitops-ui:*"):
            redis.delete(key)
        queueing.forget_local_merges()

    clear()
    yield
    clear()


@pytest.fixture
def engine(tmp_path, clean_queues):
    """`manage.py engine` as the launcher starts it, on the test database; no polling, so the
    webhook is what applies the push."""
    db = connection.settings_dict
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "gitops_ui.settings", "PYTHONUNBUFFERED": "1",
           "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/"
                           f"{db['NAME']}",
           "GITOPS_UI_POLL_INTERVAL": "0", "GITOPS_UI_REFRESH_INTERVAL": "180",
           "GITOPS_UI_SYNC_HEALTH_TIMEOUT": "300", "GITOPS_UI_WORKER_THREADS": "8"}
    log = tmp_path / "engine.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "manage.py", "engine"], cwd=BASE_DIR, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    yield lambda: log.read_text(errors="replace")[-4000:]
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def running_operation(app: Application) -> Operation | None:
    return Operation.objects.filter(application=app, phase=Operation.Phase.RUNNING).first()


def test_a_push_is_applied_while_a_git_server_hangs_and_two_syncs_wait_on_hooks(
        git_server, kube, tmp_path, hung_server, engine, client, settings):
    settings.GITOPS_UI_WEBHOOK_SECRET = SECRET  # the webhook is handled in this process
    project, _ = Project.objects.get_or_create(name="default")
    cluster = Cluster.objects.create(name=f"iso-{uuid.uuid4().hex[:6]}",
                                     auth=Cluster.Auth.KUBECONFIG,
                                     kubeconfig=kube.kubeconfig_text())

    def create(name, repo):
        # As the API creates it: its first refresh is queued for the engine.
        return services.create_application(
            name=name, project=project, repository=repo, cluster=cluster, namespace=name,
            automated=True, prune=True, sync_options=["CreateNamespace=true"])

    # The application that will be pushed to, synced once before the trouble starts.
    fast_remote = Remote(git_server, tmp_path, "iso-fast")
    fast_remote.commit({"cm.yaml": configmap("pushed", "one")})
    fast = create(fast_remote.name, fast_remote.record())
    kube_engine = Engine.from_kubeconfig(kube.kubeconfig_text(), name="isolation-test")
    configmaps = kube_engine.resource_for("v1", "ConfigMap")

    def live_value():
        obj = kube_engine.get(configmaps, fast.namespace, "pushed")
        return (obj or {}).get("data", {}).get("value")

    assert until(live_value, lambda v: v == "one", timeout=120) == "one", engine()
    until(lambda: Application.objects.get(pk=fast.pk), lambda a: a.sync_status == "Synced",
          timeout=60)

    # One repository on a server that never answers (each git call waits out git's timeout).
    hung = create(f"iso-hung-{uuid.uuid4().hex[:6]}", Repository.objects.create(url=hung_server))
    # Two applications whose syncs wait on a hook that never ends.
    slow = []
    for i in range(2):
        remote = Remote(git_server, tmp_path, f"iso-slow{i}")
        remote.commit({"hook.yaml": hook_that_never_ends("migrate"),
                       "cm.yaml": configmap("app", "x")})
        slow.append(create(remote.name, remote.record()))
    for app in slow:
        op = until(lambda: running_operation(app), lambda o: o is not None, timeout=60)
        assert op is not None, engine()
        hook_started = until(lambda: kube_engine.get(
            kube_engine.resource_for("batch/v1", "Job"), app.namespace, "migrate"), bool,
            timeout=60)
        assert hook_started, engine()

    # The push: a commit, and GitLab's webhook for it.
    sha = fast_remote.commit({"cm.yaml": configmap("pushed", "two")})
    answer = client.post("/api/webhook/git", {
        "object_kind": "push", "ref": "refs/heads/main", "before": "0" * 40, "after": sha,
        "project": {"git_http_url": fast_remote.url, "default_branch": "main"}},
        content_type="application/json", HTTP_X_GITLAB_EVENT="Push Hook",
        HTTP_X_GITLAB_TOKEN=SECRET)
    assert answer.status_code == 202, answer.content

    assert until(live_value, lambda v: v == "two", timeout=20) == "two", engine()
    assert until(lambda: Application.objects.get(pk=fast.pk).synced_sha, lambda s: s == sha,
                 timeout=20) == sha
    # ...while the others are still stuck where they were.
    for app in slow:
        assert running_operation(app) is not None, f"{app.name}'s sync no longer waits"
    assert Application.objects.get(pk=hung.pk).reconciled_at is None  # its git call still hangs


def test_the_periodic_refresh_queues_one_job_per_repository(git_server, kube, tmp_path,
                                                            clean_queues):
    project, _ = Project.objects.get_or_create(name="default")
    cluster = Cluster.objects.create(name=f"iso-{uuid.uuid4().hex[:6]}",
                                     auth=Cluster.Auth.KUBECONFIG,
                                     kubeconfig=kube.kubeconfig_text())
    apps = {}
    for i in range(2):
        remote = Remote(git_server, tmp_path, f"iso-due{i}")
        remote.commit({"cm.yaml": configmap("due", str(i))})
        repo = remote.record()
        apps[repo.pk] = [Application.objects.create(
            name=f"{remote.name}-{n}", project=project, repository=repo, cluster=cluster,
            namespace=f"{remote.name}-{n}", path="") for n in range(2)]
    background = django_rq.get_queue("background")

    # Just created: their own refresh (queued when saved through the API) takes them.
    assert refreshing.schedule_due_refreshes() == 0
    # Never refreshed an interval after they were created (that job was lost), so due: one job
    # per repository, each refreshing that repository's apps.
    Application.objects.update(created_at=timezone.now() - timedelta(days=1))
    assert refreshing.schedule_due_refreshes() == 2
    assert sorted((job.args[0], sorted(job.args[1])) for job in background.get_jobs()) == sorted(
        (repo_id, sorted(app.pk for app in group)) for repo_id, group in apps.items())
    # Still queued (or running): the next pass queues nothing more for them.
    assert refreshing.schedule_due_refreshes() == 0
    assert background.count == 2

    for job in background.get_jobs():
        background.remove(job)
        job.perform()
    assert all(Application.objects.filter(pk=app.pk, reconciled_at__isnull=False).exists()
               for group in apps.values() for app in group)
    assert refreshing.schedule_due_refreshes() == 0  # refreshed: not due again for a while
