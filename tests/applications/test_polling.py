"""Polling (apps/applications/polling.py) on the real git server, Redis, PostgreSQL and control
plane: a commit goes live without a webhook within 15 s; an unchanged repository costs one
ls-remote per poll and no refresh; a failing server is polled less and less often, then at the
normal pace once it answers; a hung server delays no other repository."""
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import django_rq
import pytest
import yaml
from django.db import connection

from apps.applications import polling, refreshing, services
from apps.applications.models import Application, Project
from apps.clusters.models import Cluster
from apps.core.reconciler import periodic_tasks
from apps.engine.cluster import Cluster as Engine
from apps.repositories import services as repositories
from apps.repositories.models import Repository
from gitops_ui.env import BASE_DIR
from tests.gitcli import git
from tests.waiting import until

from .factories import make_app

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]


class Remote:
    """A repository on the local git server, with a working clone to commit from."""

    def __init__(self, git_server, workdir: Path):
        self.name = f"polled-{uuid.uuid4().hex[:8]}"
        self.git_server = git_server
        self.url = git_server.create_repo(self.name)
        self.work = workdir / self.name
        git("clone", "--quiet", git_server.auth_url(self.name), self.work)

    def commit(self, files: dict[str, dict], branch: str = "main") -> str:
        for path, obj in files.items():
            (self.work / path).write_text(yaml.safe_dump(obj))
        git("add", "-A", cwd=self.work)
        git("commit", "--quiet", "--allow-empty", "-m", "change", cwd=self.work)
        git("push", "--quiet", "origin", f"HEAD:{branch}", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work).stdout.strip()

    def record(self) -> Repository:
        return Repository.objects.create(url=self.url, username=self.git_server.username,
                                         password=self.git_server.password)

    def ref_advertisements(self, status: int = 200) -> int:
        """Ref listings (what one ls-remote asks for) the server answered with `status`, read
        from its access log."""
        log = self.git_server.processes[0].log.read_text(errors="replace")
        return sum(1 for line in log.splitlines()
                   if f"/{self.name}.git/info/refs?service=git-upload-pack" in line
                   and f'" {status} ' in line)


def configmap(value: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "polled"},
            "data": {"value": value}}


@pytest.fixture
def clean_polling():
    """No poll state, claim or queued poll left by another test."""
    redis = django_rq.get_connection("sync")

    def clear():
        for key in redis.scan_iter("gitops-ui:poll*"):
            redis.delete(key)

    clear()
    yield
    clear()


@pytest.fixture
def rows(clean_polling):
    """A project and a cluster record no refresh here reaches (apps are only refreshed, the
    refresh records the unreachable cluster as a condition)."""
    project, _ = Project.objects.get_or_create(name="default")
    cluster = Cluster.objects.create(name="nowhere", server="https://127.0.0.1:1", token="t")
    return SimpleNamespace(project=project, cluster=cluster)


def refresh_jobs(queue) -> list[tuple]:
    return [job.args for job in queue.get_jobs()
            if job.func_name == "apps.applications.jobs.refresh_repository"]


def refreshed_apps(repo) -> list[str]:
    return sorted(Application.objects.filter(repository=repo, reconciled_at__isnull=False)
                  .values_list("name", flat=True))


# --- the schedule --------------------------------------------------------------------------------
def test_the_reconciler_polls_itself_instead_of_queueing_behind_other_work(
        settings, sync_queue, git_server, tmp_path, rows):
    remote = Remote(git_server, tmp_path)
    remote.commit({"cm.yaml": configmap("one")})
    repo = remote.record()
    make_app(remote.name, rows.project, repo, rows.cluster)
    settings.GITOPS_UI_POLL_INTERVAL = 5
    task = next(t for t in periodic_tasks() if t.name == "poll-repositories")
    assert task.interval == 5
    before = remote.ref_advertisements()  # the clone's
    task.run()  # a poll, done by the reconciler's thread: no job waits for a worker
    assert polling.state(repo.pk)["known"]
    assert until(remote.ref_advertisements, lambda n: n > before, timeout=5) == before + 1
    assert sync_queue.count == 0
    settings.GITOPS_UI_POLL_INTERVAL = 0
    assert "poll-repositories" not in [t.name for t in periodic_tasks()]


# --- a commit goes live with polling alone -------------------------------------------------------
@pytest.fixture
def platform(tmp_path, clean_polling, sync_queue):
    """The reconciler and a worker, run as `make run` runs them, on the test database. The
    periodic refresh keeps its default 180 s, polling its default interval."""
    db = connection.settings_dict
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "gitops_ui.settings",
           "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/"
                           f"{db['NAME']}",
           "GITOPS_UI_REFRESH_INTERVAL": "180", "PYTHONUNBUFFERED": "1"}
    env.pop("GITOPS_UI_POLL_INTERVAL", None)
    commands = {"worker": ["rqworker", "--worker-class", "rq.worker.SimpleWorker", "sync",
                           "default"],
                "reconciler": ["reconcile"]}
    procs, logs = [], {}
    for name, argv in commands.items():
        logs[name] = tmp_path / f"{name}.log"
        with open(logs[name], "wb") as out:
            procs.append(subprocess.Popen([sys.executable, "manage.py", *argv], cwd=BASE_DIR,
                                          env=env, stdout=out, stderr=subprocess.STDOUT))
    yield SimpleNamespace(log=lambda name: logs[name].read_text(errors="replace"))
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_commit_goes_live_with_polling_alone_within_15_seconds(git_server, kube, tmp_path,
                                                                 platform):
    remote = Remote(git_server, tmp_path)
    remote.commit({"cm.yaml": configmap("one")})
    repo = remote.record()
    cluster = Cluster.objects.create(name="local", auth=Cluster.Auth.KUBECONFIG,
                                     kubeconfig=kube.kubeconfig_text())
    project, _ = Project.objects.get_or_create(name="default")
    name = remote.name
    # Created as the API creates it: the worker's first refresh syncs it (and warms its cache).
    services.create_application(name=name, project=project, repository=repo, cluster=cluster,
                                namespace=name, automated=True, prune=True,
                                sync_options=["CreateNamespace=true"])
    engine = Engine.from_kubeconfig(kube.kubeconfig_text(), name="polling-test")
    configmaps = engine.resource_for("v1", "ConfigMap")

    def live_value():
        obj = engine.get(configmaps, name, "polled")
        return (obj or {}).get("data", {}).get("value")

    assert until(live_value, lambda v: v == "one", timeout=120) == "one", platform.log("worker")
    assert until(lambda: polling.state(repo.pk)["known"], bool, timeout=30), \
        platform.log("reconciler") + platform.log("worker")
    until(lambda: Application.objects.get(name=name),
          lambda a: (a.sync_status, a.health_status) == ("Synced", "Healthy"), timeout=60)

    sha = remote.commit({"cm.yaml": configmap("two")})  # and no webhook
    started = time.monotonic()
    assert until(live_value, lambda v: v == "two", timeout=60) == "two", platform.log("worker")
    elapsed = time.monotonic() - started
    assert elapsed <= 15, f"applied {elapsed:.1f} s after the push"
    # The refresh that applied it is the one polling queued for the moved branch.
    assert f"refresh_repository({repo.pk}, 'refs/heads/main', 'main')" in platform.log("worker")
    app = until(lambda: Application.objects.get(name=name), lambda a: a.synced_sha == sha)
    assert app.synced_sha == sha


# --- an unchanged repository ---------------------------------------------------------------------
def test_an_unchanged_repository_costs_one_ls_remote_per_poll_and_no_refresh(
        git_server, tmp_path, rows, sync_queue):
    remote = Remote(git_server, tmp_path)
    remote.commit({"cm.yaml": configmap("one")})
    remote.commit({}, branch="dev")
    repo = remote.record()
    for app_name, revision in (("on-head", "HEAD"), ("on-main", "main"), ("on-dev", "dev")):
        make_app(f"{remote.name}-{app_name}", rows.project, repo, rows.cluster, revision=revision)

    assert polling.poll_due() == 1  # one repository, whatever the number of its apps
    first = until(remote.ref_advertisements, lambda n: n >= 1, timeout=5)
    for _ in range(3):
        assert polling.poll_due() == 1
    assert until(remote.ref_advertisements, lambda n: n >= first + 3, timeout=5) == first + 3
    time.sleep(0.3)
    assert remote.ref_advertisements() == first + 3  # one ls-remote per poll, no other call
    assert sync_queue.count == 0 and refreshed_apps(repo) == []

    # A commit on dev: one refresh, of the app that follows dev only.
    remote.commit({"cm.yaml": configmap("dev")}, branch="dev")
    polling.poll_due()
    assert refresh_jobs(sync_queue) == [(repo.pk, "refs/heads/dev", "main")]
    polling.poll_due()  # seen already: nothing more
    assert len(refresh_jobs(sync_queue)) == 1
    sync_queue.empty()
    refreshing.refresh_repository(repo.pk, "refs/heads/dev", "main")
    assert refreshed_apps(repo) == [f"{remote.name}-on-dev"]

    # A commit on main moves HEAD too: one refresh, for the apps following main or HEAD.
    remote.commit({"cm.yaml": configmap("main")})
    polling.poll_due()
    assert refresh_jobs(sync_queue) == [(repo.pk, "refs/heads/main", "main")]
    assert sorted(a.name for a in Application.objects.filter(repository=repo)
                  if refreshing.tracks_ref(a, "refs/heads/main", "main")) == [
        f"{remote.name}-on-head", f"{remote.name}-on-main"]


# --- a failing server ----------------------------------------------------------------------------
def test_a_failing_git_server_is_polled_less_and_less_often_then_again_at_the_normal_pace(
        git_server, tmp_path, rows, sync_queue, settings, caplog):
    settings.GITOPS_UI_POLL_INTERVAL = 0.25
    name = f"late-{uuid.uuid4().hex[:8]}"
    repo = Repository.objects.create(url=git_server.url(name), username=git_server.username,
                                     password=git_server.password)
    make_app(name, rows.project, repo, rows.cluster)

    def not_found_answers():
        log = git_server.processes[0].log.read_text(errors="replace")
        return sum(1 for line in log.splitlines()
                   if f"/{name}.git/info/refs" in line and '" 404 ' in line)

    failures_at = {}  # failures in a row -> when the state first showed it
    deadline = time.monotonic() + 30
    while len(failures_at) < 4 and time.monotonic() < deadline:
        polling.poll_due()  # the reconciler would queue one every 0.25 s
        failures_at.setdefault(polling.state(repo.pk)["failures"], time.monotonic())
        time.sleep(0.05)
    failures_at.pop(0, None)
    assert sorted(failures_at) == [1, 2, 3, 4], failures_at
    gaps = [failures_at[n + 1] - failures_at[n] for n in (1, 2, 3)]
    # After n failures the next try waits 0.25 s × 2^n: 0.5, 1 and 2 s.
    for n, gap in zip((1, 2, 3), gaps):
        assert gap >= polling.backoff_delay(n) - 0.1, gaps
    assert gaps[0] < gaps[1] < gaps[2], gaps
    assert not_found_answers() == 4  # no call in between: backing off means not asking
    assert "repository not found" in polling.state(repo.pk)["error"]
    assert polling.backoff_delay(30) == polling.BACKOFF_CAP

    # The server has the repository now: the next due poll succeeds and the pace is normal.
    work = tmp_path / name
    git_server.create_repo(name)
    git("clone", "--quiet", git_server.auth_url(name), work)
    git("commit", "--quiet", "--allow-empty", "-m", "first", cwd=work)
    git("push", "--quiet", "origin", "HEAD:main", cwd=work)
    until(lambda: (polling.poll_due(), polling.state(repo.pk))[1],
          lambda s: s["known"], timeout=10, interval=0.05)
    assert polling.state(repo.pk)["failures"] == 0
    assert any("works again after 4 failure(s)" in r.getMessage() for r in caplog.records)
    git("commit", "--quiet", "--allow-empty", "-m", "second", cwd=work)
    git("push", "--quiet", "origin", "HEAD:main", cwd=work)
    assert polling.poll_due() == 1  # due at once: no backoff left
    assert refresh_jobs(sync_queue) == [(repo.pk, "refs/heads/main", "main")]
    assert git_server.password not in caplog.text


# --- a hung server -------------------------------------------------------------------------------
@pytest.fixture
def hung_server():
    """A loopback HTTP "server" that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/hung.git"
    listener.close()


def test_a_hung_git_server_does_not_delay_polling_of_another_repository(
        git_server, tmp_path, rows, sync_queue, hung_server):
    hung = Repository.objects.create(url=hung_server)
    make_app("on-hung", rows.project, hung, rows.cluster)
    remote = Remote(git_server, tmp_path)
    remote.commit({"cm.yaml": configmap("one")})
    repo = remote.record()
    make_app(remote.name, rows.project, repo, rows.cluster)
    # Known refs for the healthy one (the hung one is left to time out later).
    assert polling.poll_repository(polling.Target(repo.pk, repo.url, repositories.credentials(repo))) == []

    remote.commit({"cm.yaml": configmap("two")})
    started = time.monotonic()
    job = threading.Thread(target=polling.poll_due)
    job.start()
    jobs = until(lambda: refresh_jobs(sync_queue), bool, timeout=polling.GIT_TIMEOUT)
    found_after = time.monotonic() - started
    assert jobs == [(repo.pk, "refs/heads/main", "main")]
    assert found_after < 3, f"the healthy repository's commit was found after {found_after:.1f} s"
    assert polling.state(hung.pk)["failures"] == 0  # still waiting for its answer

    # The next poll does not wait for the hung call either: it skips that repository.
    sync_queue.empty()
    for key in django_rq.get_connection("sync").scan_iter("gitops-ui:*-queued:*"):
        django_rq.get_connection("sync").delete(key)
    remote.commit({"cm.yaml": configmap("three")})
    again = time.monotonic()
    assert polling.poll_due() == 1
    assert time.monotonic() - again < 3
    assert refresh_jobs(sync_queue) == [(repo.pk, "refs/heads/main", "main")]

    job.join(polling.JOB_WAIT + 1)
    assert not job.is_alive()  # the job ends after JOB_WAIT; the call goes on in its thread
    state = until(lambda: polling.state(hung.pk), lambda s: s["failures"] == 1,
                  timeout=polling.GIT_TIMEOUT + 5)
    assert "timed out" in state["error"]
    assert state["next"] - time.time() > polling.backoff_delay(1) - 2  # backing off
