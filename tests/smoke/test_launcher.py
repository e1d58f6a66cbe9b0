"""`make run` on a fresh data dir: one command brings up web, the engine (worker threads and
reconciler) and the build worker, and Ctrl-C takes them all down. No PostgreSQL or Redis given: the embedded defaults are used."""
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import requests
from redis import Redis
from rq import Queue

from gitops_ui.env import BASE_DIR
from tests.localstack.process import ManagedProcess, free_port, port_open, wait_for


class Launcher:
    """`python -m gitops_ui.launcher` on a data dir, its output in `<data dir>/run-N.log`."""

    def __init__(self, data_dir, threads=2, **env):
        self.data_dir = data_dir
        self.port = free_port()
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("DATABASE_URL", "REDIS_URL", "GITOPS_UI_ADMIN_PASSWORD",
                                 "GITOPS_UI_WEBHOOK_SECRET")}
        self.env.update(GITOPS_UI_DATA_DIR=str(data_dir), GITOPS_UI_PORT=str(self.port),
                        GITOPS_UI_WORKER_THREADS=str(threads), **env)
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / f"run-{len(list(data_dir.glob('run-*.log')))}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "gitops_ui.launcher"],
                                         cwd=BASE_DIR, env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.log.read_text()

    def wait_serving(self, timeout=90) -> None:
        wait_for(lambda: self.proc.poll() is None
                 and requests.get(f"{self.base}/login/", timeout=1).ok,
                 timeout, f"the login page (launcher output: {self.output()[-2000:]})")

    def redis(self) -> Redis:
        return Redis(unix_socket_path=str(self.data_dir / "redis.sock"))

    def manage(self, *argv) -> str:
        """Run a manage.py command against this launcher's database and Redis."""
        result = subprocess.run([sys.executable, "manage.py", *argv], cwd=BASE_DIR,
                                env={**self.env, "DJANGO_SETTINGS_MODULE": "gitops_ui.settings",
                                     "REDIS_URL": f"unix://{self.data_dir / 'redis.sock'}?db=0"},
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(30)
        output = self.output()
        assert self.proc.returncode == 0, output[-3000:]
        assert "[gitops-ui] stopped." in output
        return output


def test_run_serves_the_ui_runs_jobs_and_stops_cleanly(tmp_path):
    run = Launcher(tmp_path, GITOPS_UI_HEARTBEAT_INTERVAL="1")
    try:
        run.wait_serving()
        output = run.output()
        password = re.search(r"Created admin account 'admin' with password: (\S+)", output).group(1)

        session = requests.Session()
        session.get(f"{run.base}/login/")
        answer = session.post(f"{run.base}/login/", data={
            "username": "admin", "password": password,
            "csrfmiddlewaretoken": session.cookies["csrftoken"]}, headers={"Referer": run.base})
        assert answer.url.startswith(f"{run.base}/") and "/login/" not in answer.url  # logged in
        assert session.get(f"{run.base}/admin/").status_code == 200
        assert session.get(f"{run.base}/readyz").json()["status"] == "ready"
        # The reconciler enqueues a heartbeat every second and a worker runs it.
        wait_for(lambda: Queue("default", connection=run.redis()).finished_job_registry.count > 0,
                 30, "a heartbeat job run by a worker")

        # At rest (a job every second, nothing wrong) the terminal stays quiet...
        at_rest = len(run.output())
        time.sleep(4)
        quiet = run.output()[at_rest:]
        assert " INFO " not in quiet, quiet
        # ...but a job that fails is shown.
        Queue("default", connection=run.redis()).enqueue("apps.core.jobs.no_such_job")
        wait_for(lambda: "no_such_job" in run.output()[at_rest:], 30, "the failed job shown")

        # No build worker while no build is queued; a queued build starts one, which runs it
        # in a process of its own (Django set up there, not in the worker's parent).
        assert not _pids(tmp_path, b"apps.core.worker")
        build = Queue("builds", connection=run.redis()).enqueue("apps.core.jobs.heartbeat")
        wait_for(lambda: build.get_status(refresh=True) == "finished", 60,
                 f"the build run (output: {run.output()[-2000:]})")
        assert build.return_value()["pid"] not in _pids(tmp_path, b"apps.core.worker")
    finally:
        output = run.stop()
    assert password not in output.split("Created admin account")[1].split("\n", 1)[1]
    assert not _processes_mentioning(str(tmp_path))


def test_a_second_run_in_the_same_folder_is_refused_and_the_webhook_secret_shown_once(tmp_path):
    first = Launcher(tmp_path)
    try:
        first.wait_serving()
        secret = (tmp_path / "webhook_secret").read_text().strip()
        assert len(secret) >= 32
        assert f"Generated the webhook secret: {secret}" in first.output()

        second = subprocess.run([sys.executable, "-m", "gitops_ui.launcher"], cwd=BASE_DIR,
                                env={**first.env, "GITOPS_UI_PORT": str(free_port())},
                                capture_output=True, text=True, timeout=60)
        assert second.returncode != 0
        assert (f"GitOps UI is already running from this folder (pid {first.proc.pid}); "
                "stop it first") in second.stderr
        assert "Open http" not in second.stdout and secret not in second.stdout + second.stderr
        # The first one did not notice: its Redis socket is in place and it still serves.
        assert (tmp_path / "redis.sock").exists()
        assert first.proc.poll() is None
        assert requests.get(f"{first.base}/healthz", timeout=5).status_code == 200
        assert requests.get(f"{first.base}/readyz", timeout=5).json()["status"] == "ready"
    finally:
        first.stop()

    again = Launcher(tmp_path)  # the same folder once the first has stopped: starts
    try:
        again.wait_serving()
    finally:
        output = again.stop()
    assert "webhook secret" not in output and secret not in output
    assert (tmp_path / "webhook_secret").read_text().strip() == secret


def test_redis_killed_is_restarted_and_a_queued_sync_is_not_lost(tmp_path):
    run = Launcher(tmp_path, threads=1)
    try:
        run.wait_serving()
        # The only thread is busy, so the sync below is still waiting in Redis when Redis dies.
        sleeper = Queue("sync", connection=run.redis()).enqueue("time.sleep", 6)
        wait_for(lambda: sleeper.get_status(refresh=True) == "started", 30, "the worker busy")
        # An application whose repository and cluster cannot be reached: its sync ends Failed
        # or Error once a worker runs it; what matters is that it runs at all.
        op_id = int(run.manage("shell", "-c", SYNC_REQUEST).split("OPERATION")[1])
        assert f"operation-{op_id}" in Queue("sync", connection=run.redis()).job_ids
        assert _operation(tmp_path, op_id)[0] == "Pending"
        time.sleep(1.5)  # the append-only file is flushed to disk every second

        redis_pid = _redis_server_pid(tmp_path)
        os.kill(redis_pid, signal.SIGKILL)
        wait_for(lambda: "[gitops-ui] redis is back" in run.output(), 30, "Redis restarted")
        assert f"[gitops-ui] redis exited with -{signal.SIGKILL}" in run.output()
        assert _redis_server_pid(tmp_path) != redis_pid

        wait_for(lambda: _operation(tmp_path, op_id)[0] not in ("Pending", "Running"), 60,
                 f"the sync requested before the kill to run (output: {run.output()[-3000:]})")
        assert _operation(tmp_path, op_id)[0] in ("Failed", "Error")
        assert run.proc.poll() is None
        assert requests.get(f"{run.base}/healthz", timeout=5).status_code == 200
        wait_for(lambda: requests.get(f"{run.base}/readyz", timeout=5).json()["status"] == "ready",
                 30, "ready again")
    finally:
        run.stop()
    assert not _processes_mentioning(str(tmp_path))



def test_workers_come_back_after_a_long_redis_outage_instead_of_stopping_everything(tmp_path):
    # An external Redis (REDIS_URL) the launcher cannot restart, away for ~25 s.
    redis_port = free_port()

    def start_redis(n):
        proc = ManagedProcess(f"redis-{n}", ["redis-server", "--port", redis_port, "--save", "",
                                             "--appendonly", "no", "--dir", tmp_path], tmp_path)
        proc.start().wait_until(lambda: port_open(redis_port), 15, "Redis listening")
        return proc

    redis = start_redis(1)
    run = Launcher(tmp_path, REDIS_URL=f"redis://127.0.0.1:{redis_port}/0")
    try:
        run.wait_serving()
        connection = Redis(port=redis_port)
        job = Queue("sync", connection=connection).enqueue("time.sleep", 3)
        wait_for(lambda: job.get_status(refresh=True) == "started", 30, "the engine busy")
        engine = _engine_pid(tmp_path)
        redis.stop()  # the engine ends its job without Redis, and waits for it
        wait_for(lambda: "could not reach Redis" in run.output(), 30,
                 f"the engine waiting for Redis (output: {run.output()[-3000:]})")
        assert _engine_pid(tmp_path) == engine  # it rode the outage out
        # An engine that dies meanwhile cannot start again until Redis is back: restarted with
        # a backoff, never given up on.
        os.kill(engine, signal.SIGKILL)
        wait_for(lambda: run.output().count("while Redis was away") >= 3, 60,
                 f"restarts while Redis is away (output: {run.output()[-3000:]})")
        assert run.proc.poll() is None, run.output()[-3000:]
        assert "keeps exiting" not in run.output()

        redis = start_redis(2)
        heartbeat = Queue("default", connection=Redis(port=redis_port)).enqueue(
            "apps.core.jobs.heartbeat")
        wait_for(lambda: heartbeat.get_status(refresh=True) == "finished", 30,
                 "a job run by the restarted engine")
    finally:
        run.stop()
        redis.stop()


SYNC_REQUEST = """
from apps.applications import services
from apps.applications.models import Application, Project
from apps.clusters.models import Cluster
from apps.repositories.models import Repository
project, _ = Project.objects.get_or_create(name="default")
app = Application.objects.create(
    name="unreachable", project=project, namespace="unreachable",
    repository=Repository.objects.create(url="http://127.0.0.1:9/nowhere.git"),
    cluster=Cluster.objects.create(name="away", server="https://127.0.0.1:9", token="t"))
print("OPERATION", services.request_sync(app).pk)
"""


def _operation(data_dir, op_id) -> tuple[str, str]:
    with sqlite3.connect(f"file:{data_dir / 'db.sqlite3'}?mode=ro", uri=True) as db:
        return db.execute("SELECT phase, message FROM applications_operation WHERE id = ?",
                          (op_id,)).fetchone()


def _redis_server_pid(data_dir) -> int:
    socket = str(data_dir / "redis.sock").encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            continue
        if b"redis-server" in cmdline and socket in cmdline:
            return int(pid)
    raise AssertionError(f"no redis-server on {socket.decode()}")


def _pids(data_dir, argument: bytes) -> list[int]:
    """Processes started for this data dir with `argument` on their command line."""
    found = []
    for pid in _processes_mentioning(str(data_dir)):
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if argument in cmdline:
            found.append(int(pid))
    return found


def _engine_pid(data_dir) -> int:
    pids = _pids(data_dir, b"engine")
    assert pids, f"no engine process for {data_dir}"
    return pids[0]


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace")
        except OSError:
            continue
        if text in environ and int(pid) != os.getpid():
            found.append(pid)
    return found
