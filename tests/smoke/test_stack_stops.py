"""The local stack stops however the pytest run that started it ends: SIGTERM (a CI timeout),
SIGKILL, or a start that fails half-way. Each case runs pytest on a tiny test of its own, with
TMPDIR pointing at a folder of this test, so the stack's processes are found by that folder."""
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from gitops_ui.env import BASE_DIR
from tests.localstack.process import wait_for

TINY_TEST = '''
import os, pathlib, time

def test_uses_the_stack(stack, {fixtures}):
    pathlib.Path(os.environ["STACK_READY"]).write_text(str(stack.workdir))
    time.sleep(300)
'''
SERVERS = ("postgres", "redis-server", "etcd", "kube-apiserver", "kwok")


@pytest.fixture
def folder():
    # Not tmp_path: PostgreSQL runs as its own user (as root) and must reach the stack folder.
    path = Path(tempfile.mkdtemp(prefix="stack-stops-"))
    path.chmod(0o755)
    yield path
    subprocess.run(["rm", "-rf", str(path)])


def start_pytest(folder: Path, fixtures: str = "postgres", **env) -> subprocess.Popen:
    (folder / "test_tiny.py").write_text(TINY_TEST.format(fixtures=fixtures))
    env = {**{k: v for k, v in os.environ.items()
              if k not in ("DATABASE_URL", "REDIS_URL", "GITOPS_UI_DATA_DIR")},
           "TMPDIR": str(folder), "STACK_READY": str(folder / "ready"), **env}
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", str(folder / "test_tiny.py"), "-q",
         "-p", "no:cacheprovider", "--rootdir", BASE_DIR, "-c", BASE_DIR / "pyproject.toml"],
        cwd=BASE_DIR, env=env, stdout=open(folder / "pytest.log", "wb"), stderr=subprocess.STDOUT)


def stack_processes(folder: Path) -> dict[int, str]:
    """pid -> command line of every process whose command line, environment or working
    folder names `folder` (servers that rename themselves, PostgreSQL's backends and Redis,
    lose it from the first two but work in their data folder or keep the TMPDIR inherited)."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = " ".join(_proc_file(pid, "cmdline"))
            environ = _proc_file(pid, "environ")
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if int(pid) != os.getpid() and (str(folder) in cmdline or f"TMPDIR={folder}" in environ
                                        or cwd.startswith(str(folder))):
            found[int(pid)] = cmdline
    return found


def _proc_file(pid: str, name: str) -> list[str]:
    """/proc/<pid>/<name> (NUL-separated strings) as a list."""
    return Path(f"/proc/{pid}/{name}").read_bytes().decode(errors="replace").split("\0")


def servers_in(processes: dict[int, str]) -> set[str]:
    return {name for cmd in processes.values() for name in SERVERS
            if os.path.basename(cmd.split(" ")[0]) == name or f"/{name} " in cmd}


def wait_until_ready(run: subprocess.Popen, folder: Path, timeout: float) -> None:
    wait_for(lambda: (folder / "ready").exists() or run.poll() is not None, timeout,
             "the tiny test to start")
    assert run.poll() is None, (folder / "pytest.log").read_text()[-3000:]


def test_sigterm_stops_every_component_of_the_stack(folder):
    run = start_pytest(folder, fixtures="kube")
    try:
        wait_until_ready(run, folder, 180)
        assert servers_in(stack_processes(folder)) == set(SERVERS)
        run.send_signal(signal.SIGTERM)  # what a CI timeout sends
        run.wait(90)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode != 0
    assert stack_processes(folder) == {}, (folder / "pytest.log").read_text()[-3000:]
    # Stopped in order by the plugin (which removes the stack's folder), not only killed.
    assert not list(folder.glob("gitops-ui-stack-*")), (folder / "pytest.log").read_text()[-3000:]


def test_sigkill_of_pytest_leaves_no_component_behind(folder):
    run = start_pytest(folder, fixtures="kube")
    wait_until_ready(run, folder, 180)
    assert servers_in(stack_processes(folder)) == set(SERVERS)
    run.kill()  # no cleanup code runs: the parent-death signal ends the components
    run.wait()
    deadline = time.monotonic() + 20
    while stack_processes(folder) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stack_processes(folder) == {}


def test_a_start_that_fails_half_way_stops_what_it_started(folder):
    # PostgreSQL and Redis start, then Django's setup fails on a bad setting.
    run = start_pytest(folder, GITOPS_UI_DEBUG="maybe")
    run.wait(60)
    assert run.returncode != 0
    assert "GITOPS_UI_DEBUG must be true or false" in (folder / "pytest.log").read_text()
    assert stack_processes(folder) == {}
    assert not list(folder.glob("gitops-ui-stack-*")), "the stack folder was left behind"
