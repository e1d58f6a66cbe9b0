"""The reconciler process: enqueues periodic work on a schedule, with jitter.

It never does the work itself: it only enqueues RQ jobs, so a slow refresh never delays the
schedule and the workers can be scaled apart from it. Domain apps add their tasks to
`periodic_tasks()`.
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
    import django_rq
    from django.conf import settings

    from apps.applications import jobs as application_jobs
    from apps.core import jobs

    sync_queue = django_rq.get_queue("sync")
    # Which apps are due is decided per app by GITOPS_UI_REFRESH_INTERVAL; checking often
    # spreads the refreshes out instead of bunching them.
    check_every = min(10.0, settings.GITOPS_UI_REFRESH_INTERVAL)
    tasks = [
        PeriodicTask("worker-heartbeat", settings.GITOPS_UI_HEARTBEAT_INTERVAL,
                     lambda: django_rq.enqueue(jobs.heartbeat), jitter=5),
        PeriodicTask("refresh-due-applications", check_every,
                     lambda: sync_queue.enqueue(application_jobs.refresh_due,
                                                job_id="refresh-due-applications"), jitter=2),
        PeriodicTask("reap-stale-operations", 30,
                     lambda: sync_queue.enqueue(application_jobs.reap_stale_operations), jitter=5),
    ]
    poll_every = settings.GITOPS_UI_POLL_INTERVAL
    if poll_every > 0:  # a commit goes live without a webhook (apps/applications/polling.py)
        from apps.applications import polling

        tasks.append(PeriodicTask("poll-repositories", poll_every, polling.enqueue_poll,
                                  jitter=min(1.0, poll_every / 5)))
    return tasks


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
        """Run every task that is due; a failing task is logged and tried at its next turn."""
        now = self.clock()
        ran = []
        for task in self.tasks:
            if task.next_due > now:
                continue
            try:
                task.run()
                ran.append(task.name)
            except REDIS_DOWN:  # the launcher restarts Redis; one line per try is enough
                log.warning("periodic task %s not queued: Redis is unreachable; next try in %.0f s",
                            task.name, task.interval)
            except Exception:
                log.exception("periodic task %s failed; next try in %.0f s", task.name, task.interval)
            task.next_due = now + task.interval + self.rng.uniform(0, task.jitter)
        return ran

    def seconds_to_next(self) -> float:
        return max(0.0, min(t.next_due for t in self.tasks) - self.clock()) if self.tasks else 60.0

    def run_forever(self, stop: threading.Event) -> None:
        log.info("reconciler started with %s", ", ".join(
            f"{t.name} every {t.interval:.0f}s" for t in self.tasks))
        while not stop.is_set():
            self.run_due()
            stop.wait(min(self.seconds_to_next(), 1.0))
