"""`make run` on a fresh data dir: one command brings up web, workers and reconciler, and
Ctrl-C takes them all down. No PostgreSQL or Redis given: the embedded defaults are used."""
import os
import re
import signal
import subprocess
import sys

import requests
from redis import Redis
from rq import Queue

from gitops_ui.env import BASE_DIR
from tests.localstack.process import free_port, wait_for


def test_run_serves_the_ui_runs_jobs_and_stops_cleanly(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(GITOPS_UI_DATA_DIR=str(tmp_path), GITOPS_UI_PORT=str(port), GITOPS_UI_WORKERS="1",
               GITOPS_UI_HEARTBEAT_INTERVAL="1")
    env.pop("GITOPS_UI_ADMIN_PASSWORD", None)
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gitops_ui.launcher"], cwd=BASE_DIR, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: requests.get(f"{base}/login/", timeout=1).ok, 90, "the login page")
        output = log.read_text()
        password = re.search(r"Created admin account 'admin' with password: (\S+)", output).group(1)

        session = requests.Session()
        session.get(f"{base}/login/")
        answer = session.post(f"{base}/login/", data={
            "username": "admin", "password": password,
            "csrfmiddlewaretoken": session.cookies["csrftoken"]}, headers={"Referer": base})
        assert answer.url == f"{base}/"
        assert session.get(f"{base}/admin/").status_code == 200
        assert session.get(f"{base}/readyz").json()["status"] == "ready"
        # The reconciler enqueues a heartbeat every second and a worker runs it.
        redis = Redis(unix_socket_path=str(tmp_path / "redis.sock"))
        wait_for(lambda: Queue("default", connection=redis).finished_job_registry.count > 0,
                 30, "a heartbeat job run by a worker")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    output = log.read_text()
    assert proc.returncode == 0, output[-3000:]
    assert "[gitops-ui] stopped." in output
    assert password not in output.split("Created admin account")[1].split("\n", 1)[1]
    assert not _processes_mentioning(str(tmp_path))


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
