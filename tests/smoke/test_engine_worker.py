"""The engine worker (`manage.py engine`, apps/core/worker.py) on the real Redis: jobs run side by
side on threads, a job someone waits for overtakes a queue full of background work and finds a
thread free however busy the background is, and a stop does not wait for a job that hangs."""
import os
import signal
import subprocess
import sys
import time

import django_rq
import pytest
from rq import Worker

from gitops_ui.env import BASE_DIR
from tests.waiting import until

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def queues():
    names = ("sync", "background", "default", "builds")
    found = {name: django_rq.get_queue(name) for name in names}
    for queue in found.values():
        queue.empty()
    yield found
    for queue in found.values():
        queue.empty()


@pytest.fixture
def start_engine(tmp_path):
    started = []

    def start(threads: int) -> subprocess.Popen:
        log = tmp_path / f"engine-{len(started)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "manage.py", "engine", "--no-reconciler", "--threads",
                 str(threads)], cwd=BASE_DIR, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "DJANGO_SETTINGS_MODULE": "gitops_ui.settings"})
        proc.log = log
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def started(jobs) -> int:
    return sum(1 for job in jobs if job.get_status(refresh=True) == "started")


def test_a_waited_for_job_overtakes_background_work_and_always_finds_a_thread(
        queues, start_engine):
    background = [queues["background"].enqueue("time.sleep", 60) for _ in range(10)]
    build = queues["builds"].enqueue("time.sleep", 0)
    engine = start_engine(threads=4)
    # Several at once, but never every thread: one stays free for what someone waits for.
    assert until(lambda: started(background), lambda n: n == 3, timeout=60) == 3, \
        engine.log.read_text()
    time.sleep(2)
    assert started(background) == 3

    push = queues["sync"].enqueue("time.sleep", 0)
    assert until(lambda: push.get_status(refresh=True), lambda s: s == "finished",
                 timeout=20) == "finished", engine.log.read_text()
    assert queues["background"].count == 7  # it did not wait behind them
    assert started(background) == 3
    assert build.get_status(refresh=True) == "queued"  # builds run in their own worker


def test_a_stop_does_not_wait_for_a_job_that_hangs(queues, start_engine):
    hung = queues["sync"].enqueue("time.sleep", 600)
    engine = start_engine(threads=2)
    until(lambda: hung.get_status(refresh=True), lambda s: s == "started", timeout=60)
    engine.send_signal(signal.SIGTERM)
    engine.wait(40)  # the grace (10 s), not the job's 600 s
    assert engine.returncode == 0, engine.log.read_text()
    assert "still running" in engine.log.read_text()
    # It said goodbye to Redis: no live worker is shown running the job.
    assert not [w for w in Worker.all(connection=hung.connection) if w.pid == engine.pid]
