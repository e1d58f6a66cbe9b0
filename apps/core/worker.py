"""The two kinds of RQ worker `make run` starts.

ThreadedWorker (`manage.py engine`) runs many jobs at once, each on a thread of one process:
a sync waiting minutes for a hook's health, or a git call on a server that hangs, holds one
thread, not the process, and every thread shares the process' watch cache of each cluster
(apps.clusters.services.runtime), so concurrency costs no second copy of the cluster. Priority
queues (someone is waiting: a push, a click) are dequeued first and may use every thread; the
others (background refreshes, the heartbeat) may use all but RESERVED of them, so a push never
waits behind a pool full of background work.

BuildWorker (`python -m apps.core.worker builds`) forks a process per job: a build that crashes
or eats memory takes only its own process down. Its parent sets Django up and imports the
build code once, before the first job, so a fork starts the build at once (set up in each
fork, a tag waited ~0.9 s for its build to start); the launcher runs it only while builds are
queued.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import redis.exceptions
from rq.exceptions import DequeueTimeout
from rq.job import Job
from rq.timeouts import TimerDeathPenalty
from rq.worker import SimpleWorker, Worker, WorkerStatus
from rq.worker.base import StopRequested

from apps.core.memory import give_back_free_heap


DEFAULT_THREADS = 16  # a job mostly waits (API server, git): 16 synced 300 apps in 83 s where 8 took 122 s
RESERVED = 2  # threads kept for priority jobs (at most a quarter of them)
WAIT = 2  # seconds one dequeue blocks when any queue may be read
PRIORITY_POLL = 0.1  # seconds between two looks at the priority queues while background is full
JOB_HEARTBEAT = 15  # seconds between two heartbeats (the worker's TTL is 480 s, a job's ~90 s)
SUSPENSION_CHECK = 1.0  # seconds between two looks at `rq suspend`'s flag
STOP_GRACE = 10.0  # seconds a stopping worker waits for its running jobs
QUIET_BEFORE_TRIM = 2.0  # seconds without a job before freed memory is handed back


class ThreadedWorker(SimpleWorker):
    """Dequeues in the main thread, runs each job on a pool thread."""

    # SIGALRM (rq's default) reaches only the main thread; a timer raises in the job's thread.
    death_penalty_class = TimerDeathPenalty

    def __init__(self, queues, *args, threads: int = DEFAULT_THREADS,
                 priority: tuple[str, ...] = ("sync",), **kwargs):
        super().__init__(queues, *args, **kwargs)
        self.threads = max(1, threads)
        self.background_limit = self.threads - min(RESERVED, self.threads // 4)
        self.priority = set(priority)
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="job")
        self._slots = threading.Condition()
        self._running: dict[str, tuple[Job, object, bool]] = {}  # execution id -> job, execution, priority
        self._last_beat = 0.0
        self._suspension_checked = 0.0
        self._idle_since, self._jobs_since_trim = 0.0, 0

    # --- dequeue: only when a thread is free for what comes out ---------------------------------
    def _priority_queues(self) -> list:
        return [q for q in self._ordered_queues if q.name in self.priority]

    def _free_queues(self) -> list | None:
        """The queues a free thread may take a job from now; None when no thread is free."""
        with self._slots:
            if len(self._running) >= self.threads:
                return None
            background = sum(1 for _, _, urgent in self._running.values() if not urgent)
        return self._ordered_queues if background < self.background_limit else self._priority_queues()

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        self.procline("Listening on " + ",".join(self.queue_names()))
        idle_since = time.monotonic()
        wait_for_redis = 1.0
        while True:
            if self._stop_requested:
                raise StopRequested()
            try:
                self._beat()
                self._trim_memory()
                if self.should_run_maintenance_tasks:
                    self.run_maintenance_tasks()
                queues = self._free_queues()
                if not queues:  # every thread busy, or only background work and none free for it
                    if timeout is None and not self._running:
                        return None
                    with self._slots:
                        self._slots.wait(1)
                    continue
                # With background slots full, a blocking read of the priority queues would
                # not notice a background job ending: look once, then wait for a slot or a
                # moment (a push waits at most PRIORITY_POLL).
                saturated = len(queues) < len(self._ordered_queues)
                result = self.queue_class.dequeue_any(
                    queues, None if timeout is None or saturated else WAIT,
                    connection=self.connection, job_class=self.job_class,
                    serializer=self.serializer, death_penalty_class=self.death_penalty_class)
                if result is None and saturated and timeout is not None:
                    with self._slots:
                        self._slots.wait(PRIORITY_POLL)
                    continue
                if result is not None:
                    job, queue = result
                    if self.log_job_description:
                        self.log.info("Worker %s: %s: %s (%s)", self.name, queue.name,
                                      job.description, job.id)
                    return result
                if timeout is None:  # burst: what is left is what is running
                    if not self._running:
                        return None
                    with self._slots:
                        self._slots.wait(1)
            except DequeueTimeout:
                wait_for_redis = 1.0
                if max_idle_time is not None and not self._running \
                        and time.monotonic() - idle_since > max_idle_time:
                    return None
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                self.log.error("Worker %s: could not reach Redis: %s; retrying in %.0f s",
                               self.name, exc, wait_for_redis)
                time.sleep(wait_for_redis)
                wait_for_redis = min(wait_for_redis * 2, 5.0)  # back within seconds of Redis

    def _beat(self) -> None:
        # The main thread beats for itself and for the jobs it handed out: if this process
        # dies, their executions expire and rq fails them, as it does for a dead forking worker's.
        if time.monotonic() - self._last_beat < JOB_HEARTBEAT:
            return
        self.heartbeat()
        self._last_beat = time.monotonic()
        with self._slots:
            running = list(self._running.values())
        for job, execution, _ in running:
            try:
                self.maintain_heartbeats(job, execution)
            except Exception:  # the job may have ended meanwhile
                self.log.debug("heartbeat of job %s skipped", job.id, exc_info=True)

    def heartbeat(self, timeout=None, pipeline=None) -> None:
        # rq beats after every job it hands out (three round trips to Redis each: a few percent
        # of a first sync's CPU); _beat already keeps the worker alive every JOB_HEARTBEAT.
        if pipeline is None and timeout is None and self._last_beat \
                and time.monotonic() - self._last_beat < JOB_HEARTBEAT:
            return
        super().heartbeat(timeout, pipeline)

    def check_for_suspension(self, burst: bool) -> None:
        # Asked by rq before every job: once a second is as soon as anyone notices `rq suspend`.
        if time.monotonic() - self._suspension_checked < SUSPENSION_CHECK:
            return
        super().check_for_suspension(burst)
        self._suspension_checked = time.monotonic()

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        return Worker.get_heartbeat_ttl(self, job, working_time)

    # --- run: on a pool thread ------------------------------------------------------------------
    def execute_job(self, job: Job, queue) -> None:
        execution = self.prepare_execution(job)
        with self._slots:
            self._running[execution.id] = (job, execution, queue.name in self.priority)
        self._pool.submit(self._perform, job, queue, execution)

    def _perform(self, job: Job, queue, execution) -> None:
        try:
            self.perform_job(job, queue, execution)
        except BaseException:  # noqa: B036 -- perform_job records failures; this is a bug in rq
            self.log.exception("Worker %s: job %s ended without being recorded", self.name, job.id)
        finally:
            with self._slots:  # first: whatever fails below, the thread is free again
                self._running.pop(execution.id, None)
                self._jobs_since_trim += 1
                idle = not self._running
                if idle:
                    self._idle_since = time.monotonic()
                self._slots.notify_all()
            try:
                _close_database_connections()
                if idle:
                    self.set_state(WorkerStatus.IDLE)
            except Exception:
                self.log.warning("Worker %s: after job %s", self.name, job.id, exc_info=True)

    def _trim_memory(self) -> None:
        # A burst of jobs (a first sync) leaves the heap mostly free but held; once idle it
        # goes back to the system instead of counting as this process' memory for good.
        if self._running or self._jobs_since_trim == 0 \
                or time.monotonic() - self._idle_since < QUIET_BEFORE_TRIM:
            return
        self._jobs_since_trim = 0
        give_back_free_heap()

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        # A dequeue from one queue (priority only) goes through rq's intermediate queue.
        super().prepare_job_execution(job, remove_from_intermediate_queue=True)

    # --- stop -----------------------------------------------------------------------------------
    def _shutdown(self):
        if self._running:
            self._stop_requested = True  # the dequeue loop stops at its next turn
        else:
            raise StopRequested()

    def running_jobs(self) -> list[str]:
        with self._slots:
            return [job.id for job, _, _ in self._running.values()]

    def teardown(self):
        deadline = time.monotonic() + STOP_GRACE
        with self._slots:
            while self._running and time.monotonic() < deadline:
                self._slots.wait(deadline - time.monotonic())
        left = self.running_jobs()
        if left:
            # Their operations are failed by the reaper (no heartbeat), their jobs by rq.
            self.log.warning("Worker %s: stopping with %d job(s) still running: %s",
                             self.name, len(left), ", ".join(left))
        super().teardown()


def _close_database_connections() -> None:
    # Each thread has its own connection, ended after each job as Django ends a request's: closed
    # once older than CONN_MAX_AGE (at once on SQLite) or unusable, else the thread's next job
    # reuses it, so a burst of short jobs does not connect once per job.
    from django.db import close_old_connections

    close_old_connections()


def main(argv: list[str]) -> None:
    """`python -m apps.core.worker [-q] [--idle=SECONDS] [--burst] QUEUE...`: rq's forking worker on
    the given queues; with --idle, it exits (code 0) after that long without a job; with --burst,
    once the queues are empty."""
    import importlib

    import django
    from redis import Redis
    from rq import Queue

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gitops_ui.settings")
    django.setup()  # no database connection yet: each fork opens its own
    importlib.import_module("apps.builds.jobs")  # what every fork runs, imported once
    from gitops_ui.env import redis_url

    quiet = "-q" in argv
    idle = next((int(a.split("=", 1)[1]) for a in argv if a.startswith("--idle=")), None)
    names = [a for a in argv if not a.startswith("-")] or ["builds"]
    connection = Redis.from_url(redis_url())
    worker = Worker([Queue(name, connection=connection) for name in names],
                    connection=connection)
    worker.work(logging_level="WARNING" if quiet else "INFO", max_idle_time=idle,
                burst="--burst" in argv)


if __name__ == "__main__":
    main(sys.argv[1:])
