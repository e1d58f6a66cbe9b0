"""The reconciler: periodic tasks on a schedule, with jitter, each on a thread of its own.

It runs inside the engine worker (`manage.py engine`), or alone (`manage.py reconcile`). Its
tasks are short and never queued behind jobs: picking the due applications and queueing one
refresh job per repository, failing the operations whose worker died, polling the
repositories (each ls-remote bounded, on polling's own threads). Each task has its own thread,
so a slow one (a cluster probe that times out) never delays another. Domain apps add their
tasks to `periodic_tasks()`.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from .queues import REDIS_DOWN

log = logging.getLogger(__name__)


@dataclass
class PeriodicTask:
    name: str
    interval: float  # seconds between runs
    run: Callable[[], object]  # enqueues the work; must return quickly
    jitter: float = 0.0  # up to this many seconds added to each wait, so replicas spread out
    next_due: float = field(default=0.0, compare=False)


def periodic_tasks() -> list[PeriodicTask]:
    from django.conf import settings

    from apps.accounts import authentication
    from apps.applications import refreshing, services as applications
    from apps.audit import services as audit
    from apps.builds import services as builds
    from apps.core import jobs
    from apps.core.queues import job_queue
    from apps.notifications import services as notifications

    # Which apps are due is decided per app by GITOPS_UI_REFRESH_INTERVAL; checking often
    # spreads the refreshes out instead of bunching them.
    check_every = min(10.0, settings.GITOPS_UI_REFRESH_INTERVAL)
    tasks = [
        # A job, on purpose: it shows that a worker runs jobs (apps/core/services.py).
        PeriodicTask("worker-heartbeat", settings.GITOPS_UI_HEARTBEAT_INTERVAL,
                     lambda: job_queue("default").enqueue(jobs.heartbeat), jitter=5),
        PeriodicTask("refresh-due-applications", check_every,
                     _closing(refreshing.schedule_due_refreshes), jitter=2),
        PeriodicTask("reap-stale-operations", 30,
                     _closing(applications.reap_stale_operations), jitter=5),
        PeriodicTask("retry-notifications", 10, _closing(notifications.retry_due), jitter=2),
        # A build whose worker was killed would hold its slot (and show "running") for good.
        PeriodicTask("fail-abandoned-builds", 30, _closing(builds.fail_abandoned), jitter=5),
        # GITOPS_UI_AUDIT_RETENTION_DAYS; hourly is plenty for a limit counted in days.
        PeriodicTask("prune-audit-log", 3600, _closing(audit.prune_expired), jitter=60),
        # API requests check only their own token's expiry (apps/accounts/authentication.py).
        PeriodicTask("delete-expired-tokens", 3600, _closing(authentication.delete_expired),
                     jitter=60),
    ]
    poll_every = settings.GITOPS_UI_POLL_INTERVAL
    if poll_every > 0:  # a commit goes live without a webhook (apps/applications/polling.py)
        from apps.applications import polling

        tasks.append(PeriodicTask("poll-repositories", poll_every, _closing(polling.poll_due),
                                  jitter=min(1.0, poll_every / 5)))
    return tasks


def _closing(task: Callable[[], object]) -> Callable[[], object]:
    """`task`, then its thread's database connection closed: a task every few seconds would
    otherwise keep one open (Django closes connections at the end of requests only)."""
    def run():
        from django.db import connection

        try:
            return task()
        finally:
            connection.close()
    return run


class Reconciler:
    def __init__(self, tasks: list[PeriodicTask], clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None):
        self.tasks = tasks
        self.clock = clock
        self.rng = rng or random.Random()
        now = clock()
        for task in tasks:  # first run soon, but spread, so a restart does not stampede
            task.next_due = now + self.rng.uniform(0, task.jitter)

    def run_due(self) -> list[str]:
        """Run every task that is due, one after another; a failing task is logged and tried
        at its next turn."""
        now = self.clock()
        return [task.name for task in self.tasks if task.next_due <= now and self._run(task, now)]

    def _run(self, task: PeriodicTask, now: float) -> bool:
        try:
            task.run()
            return True
        except REDIS_DOWN:  # the launcher restarts Redis; one line per try is enough
            log.warning("periodic task %s not done: Redis is unreachable; next try in %.0f s",
                        task.name, task.interval)
        except Exception:
            log.exception("periodic task %s failed; next try in %.0f s", task.name, task.interval)
        finally:
            task.next_due = now + task.interval + self.rng.uniform(0, task.jitter)
        return False

    def seconds_to_next(self) -> float:
        return max(0.0, min(t.next_due for t in self.tasks) - self.clock()) if self.tasks else 60.0

    def run_forever(self, stop: threading.Event) -> None:
        """Run each task on its own thread until `stop` is set."""
        log.info("reconciler started with %s", ", ".join(
            f"{t.name} every {t.interval:.0f}s" for t in self.tasks))
        threads = [threading.Thread(target=self._keep_running, args=(task, stop), daemon=True,
                                    name=f"reconciler-{task.name}") for task in self.tasks]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive() and not stop.is_set():
                thread.join(1.0)

    def _keep_running(self, task: PeriodicTask, stop: threading.Event) -> None:
        while not stop.is_set():
            now = self.clock()
            if task.next_due <= now:
                self._run(task, now)
            else:
                stop.wait(min(task.next_due - now, 1.0))
