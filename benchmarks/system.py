"""The system under measurement: the local stack, Django in this process, the launcher.

Everything started here is stopped by System.close(), which __main__ calls in a `finally`
(Ctrl-C and SIGTERM included).
"""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.localstack import LocalStack
from tests.localstack.process import free_port, port_open

from . import machine

PROJECT_DIR = Path(__file__).resolve().parents[1]
WORKERS = 1  # RQ workers registered once up: the engine (the build worker starts with a build)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class System:
    def __init__(self):
        self.stack: LocalStack | None = None
        self.launcher: subprocess.Popen | None = None
        self.launcher_log: Path | None = None
        self.port = 0
        self.children: list[subprocess.Popen] = []  # other helpers (the memory probe)
        self.django_ready = False

    # --- stack --------------------------------------------------------------------------------
    def start_stack(self) -> None:
        self.stack = LocalStack()
        for name in ("postgres", "redis", "git", "kube"):
            watch = machine.Stopwatch()
            log(f"starting {name}…")
            self.stack.get(name)
            log(f"{name} up in {watch.elapsed:.1f} s")

    def get(self, name: str):
        return self.stack.get(name)

    # --- Django in this process ---------------------------------------------------------------
    def setup_django(self) -> None:
        """Point this process (and the launcher, which inherits the environment) at the stack."""
        data = self.stack.workdir / "gitops-ui-data"
        data.mkdir(exist_ok=True)
        os.environ.update({
            "DATABASE_URL": self.get("postgres").url,
            "REDIS_URL": self.get("redis").url,
            # Own data dir: generated keys shared by this process and the launcher (stored
            # credentials are encrypted with them), git clone cache outside the developer's var/.
            "GITOPS_UI_DATA_DIR": str(data),
            "DJANGO_SETTINGS_MODULE": "gitops_ui.settings",
            "GITOPS_UI_LOG_LEVEL": os.environ.get("GITOPS_UI_LOG_LEVEL", "WARNING"),
            # Webhooks are refused without a secret; the latency scenario sends this one.
            "GITOPS_UI_WEBHOOK_SECRET": secrets.token_urlsafe(24),
        })
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0, interactive=False)
        self.django_ready = True

    # --- the launcher -------------------------------------------------------------------------
    def start_launcher(self, timeout: float = 120) -> None:
        self.port = free_port()
        self.launcher_log = self.stack.log_dir / "launcher.log"
        env = {**os.environ, "GITOPS_UI_PORT": str(self.port), "GITOPS_UI_WORKERS": str(WORKERS),
               "GITOPS_UI_HOST": "127.0.0.1", "PYTHONUNBUFFERED": "1"}
        with open(self.launcher_log, "ab") as out:
            # Own session: a Ctrl-C in the terminal reaches only this process, which then stops
            # the launcher in order (SIGINT, as a user's Ctrl-C would).
            self.launcher = subprocess.Popen(
                [sys.executable, "-m", "gitops_ui.launcher"], cwd=PROJECT_DIR, env=env,
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.launcher.poll() is not None:
                raise RuntimeError(f"the launcher exited with {self.launcher.returncode}:\n"
                                   + self.launcher_tail())
            if port_open(self.port) and self._workers() >= WORKERS:
                try:
                    requests.get(f"{self.base_url}/healthz", timeout=5).raise_for_status()
                    return
                except requests.RequestException:
                    pass
            time.sleep(0.25)
        raise RuntimeError(f"the launcher was not ready after {timeout:.0f} s:\n"
                           + self.launcher_tail())

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _workers(self) -> int:
        import django_rq
        from rq import Worker

        return len(Worker.all(connection=django_rq.get_connection("sync")))

    def launcher_tail(self, lines: int = 40) -> str:
        if not self.launcher_log or not self.launcher_log.exists():
            return ""
        return "\n".join(self.launcher_log.read_text(errors="replace").splitlines()[-lines:])

    def launcher_running(self) -> bool:
        return self.launcher is not None and self.launcher.poll() is None

    def stop_launcher(self) -> None:
        proc, self.launcher = self.launcher, None
        if proc is None or proc.poll() is not None:
            return
        pids = machine.tree(proc.pid)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            log("the launcher did not stop within 60 s; killing its processes")
            for pid in reversed(pids):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait()
        # Children it started (each in its own session) die with it (PR_SET_PDEATHSIG); make sure.
        for pid in pids[1:]:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    # --- CPU of the parts ---------------------------------------------------------------------
    def cpu(self) -> dict:
        """CPU seconds so far of the launcher's tree, the API server, the rest of the cluster,
        PostgreSQL, and this process."""
        out = {"launcher": machine.cpu_seconds([self.launcher.pid]) if self.launcher_running() else 0.0}
        kube = self.stack.started.get("kube")
        if kube:
            by_name = {p.name: p.proc.pid for p in kube.processes if p.running}
            out["kube-apiserver"] = machine.cpu_seconds([by_name["kube-apiserver"]]) \
                if "kube-apiserver" in by_name else 0.0
            out["cluster-other"] = machine.cpu_seconds(
                [pid for name, pid in by_name.items() if name != "kube-apiserver"])
        pg = self.stack.started.get("postgres")
        if pg:
            out["postgres"] = machine.cpu_seconds([p.proc.pid for p in pg.processes if p.running])
        # This process alone: the stack's processes (its children) are counted above.
        out["bench-process"] = machine.process_cpu_seconds(os.getpid())
        return out

    # --- cleanup ------------------------------------------------------------------------------
    def close_uninterrupted(self) -> None:
        """close(), with Ctrl-C ignored meanwhile: a second one must not cut the cleanup short."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            self.close()
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def close(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.kill()
                child.wait()
        try:
            self.stop_launcher()
        finally:
            if self.django_ready:
                try:
                    from apps.clusters import services as clusters
                    from django.db import connections

                    for runtime in list(clusters._runtimes.values()):
                        runtime.cache.stop()
                    connections.close_all()  # PostgreSQL's shutdown waits for open sessions
                except Exception as exc:  # cleanup goes on whatever happens
                    log(f"closing Django connections failed: {exc}")
            if self.stack:
                log("stopping the stack…")
                self.stack.stop()
