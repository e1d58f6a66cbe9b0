"""Putting application work on the job queues (Redis), shared by the services, webhooks,
polling and watch threads. Jobs are named by dotted path: this layer never imports them.

Two queues, read in this order by the engine worker (apps/core/worker.py): `sync` for work
someone waits for, `background` for work nobody waits for, so a push overtakes them all.
"""
from __future__ import annotations

import threading
import time
from contextlib import suppress

from django.conf import settings
from django.db import transaction

from apps.core.queues import REDIS_DOWN, QueueUnavailable, job_queue, queue_errors, redis_connection

from .models import Operation


SYNC_QUEUE = "sync"  # someone waits: pushes, clicks, operations (dequeued first)


BACKGROUND_QUEUE = "background"  # nobody waits: watch-event and periodic refreshes


def refresh_flag(app_name: str) -> str:
    return f"gitops-ui:refresh-queued:{app_name}"


# Background refreshes wait as names in one Redis set, taken CHANGED_BATCH at a time by a
# refresh_changed job: one job and one database query per batch instead of per app (a job's
# bookkeeping and the app's lookup were a third of the engine's CPU in a first sync). A name
# already in the set is a refresh already queued: requests merge by themselves.
CHANGED_APPS = "gitops-ui:background-refresh-queued:apps"
CHANGED_JOB_FLAG = "gitops-ui:background-refresh-queued:job"  # a refresh_changed job waits
CHANGED_BATCH = 8
# Seconds a job that finds fewer than CHANGED_BATCH names waits for more before it takes them:
# watch events arrive one app at a time, and a free thread would otherwise take each alone.
CHANGED_GATHER = 0.5


def repository_refresh_flag(repo_id: int, ref: str = "") -> str:
    # Per ref: a tag push refreshes other apps than a branch push arriving at the same time.
    return f"gitops-ui:repository-refresh-queued:{repo_id}" + (f":{ref}" if ref else "")


# A rollout's status writes and a sync's objects reach the watch threads as bursts of events for
# one application: within LOCAL_MERGE seconds of queueing (or finding queued) its background
# refresh, this process merges them without asking Redis (a SET per event was 7 % of the
# engine's CPU in a first sync). The entry goes when the refresh starts (started_refresh).
LOCAL_MERGE = 2.0
_merge_lock = threading.Lock()
_background_queued: dict[str, float] = {}  # app name -> when this process saw its refresh queued
_refresh_starts: dict[str, int] = {}  # app name -> refreshes started in this process


# A sync's own writes and the first status writes of a rollout reach the watch threads while
# the refresh right after the sync is about to read the cache: the background refresh they asked
# for would compare the same objects again. A change is "compared" once a refresh that began
# after it has finished (times of this process; another process knows nothing and refreshes).
_changed_at: dict[str, float] = {}  # app name -> when a watch here last saw one of its objects change
_compared_from: dict[str, float] = {}  # app name -> when the last finished refresh here began


def compared_cluster(app_name: str, began: float) -> None:
    """A refresh of the app that began at `began` (time.monotonic()) compared it with the
    cluster and saved the outcome."""
    with _merge_lock:
        if began > _compared_from.get(app_name, float("-inf")):
            _compared_from[app_name] = began


def changes_compared(app_name: str) -> bool:
    """Whether every change a watch of this process saw to the app's objects was compared by
    a refresh that began after it."""
    with _merge_lock:
        changed = _changed_at.get(app_name)
        return changed is not None and changed < _compared_from.get(app_name, float("-inf"))


def started_refresh(app_name: str) -> None:
    """The app's refresh starts (its flags in Redis are already cleared): a change from now on
    must queue another one."""
    with _merge_lock:
        _background_queued.pop(app_name, None)
        _refresh_starts[app_name] = _refresh_starts.get(app_name, 0) + 1


def forget_local_merges() -> None:
    """Forget which background refreshes this process saw queued, and which changes it saw
    compared (tests, after emptying the queues and their flags)."""
    with _merge_lock:
        _background_queued.clear()
        _changed_at.clear()
        _compared_from.clear()


def schedule_refresh_by_name(app_name: str, *, background: bool = False) -> None:
    """Refresh soon, in a worker; requests made while one is still queued are merged.
    `background`: nobody waits for it (a change seen by a watch), so behind pushes and clicks,
    and compared with the commit resolved last (no git call).

    Takes a name so watch threads can call it without touching the database.
    """
    if background:  # apart: a click is not merged into a refresh queued behind others
        with _merge_lock:
            _changed_at[app_name] = time.monotonic()
            if time.monotonic() - _background_queued.get(app_name, -LOCAL_MERGE) < LOCAL_MERGE:
                return
            starts = _refresh_starts.get(app_name, 0)
        with queue_errors("the refresh"):
            added = redis_connection(SYNC_QUEUE).sadd(CHANGED_APPS, app_name)
        if added:  # else it waits already, and so does a job for the set
            queue_changed_job()
        with _merge_lock:  # unless the refresh started meanwhile: then nothing may be queued
            if _refresh_starts.get(app_name, 0) == starts:
                _background_queued[app_name] = time.monotonic()
    else:
        queue_once(refresh_flag(app_name), "apps.applications.jobs.refresh", app_name)


def queue_changed_job() -> None:
    """Make sure a refresh_changed job waits for the names in the set."""
    queue_once(CHANGED_JOB_FLAG, "apps.applications.jobs.refresh_changed", queue=BACKGROUND_QUEUE)


def take_changed_apps() -> list[str]:
    """Take up to CHANGED_BATCH names from the set; if more wait, queue another job for them
    (another thread takes them meanwhile). A name added from now on queues a job of its own."""
    connection = redis_connection(SYNC_QUEUE)
    if connection.scard(CHANGED_APPS) < CHANGED_BATCH:
        time.sleep(CHANGED_GATHER)  # its flag still set: names added meanwhile wait for it
    with connection.pipeline(transaction=False) as pipe:
        pipe.delete(CHANGED_JOB_FLAG)
        pipe.spop(CHANGED_APPS, CHANGED_BATCH)
        pipe.scard(CHANGED_APPS)
        _, names, left = pipe.execute()
    if left:
        queue_changed_job()
    return sorted(name.decode() for name in names or ())


def queue_once(flag: str, job, *args, at_front: bool = False, queue: str = SYNC_QUEUE) -> None:
    """Enqueue `job` unless the same one is still waiting (`flag` is cleared when it starts);
    after commit (at once outside a transaction), so a rolled-back request queues nothing.
    QueueUnavailable when Redis cannot be reached."""
    def queue_it():
        connection = redis_connection(SYNC_QUEUE)
        with queue_errors("the refresh"):
            if connection.set(flag, 1, nx=True, ex=120):
                try:
                    # (rq's default result_ttl: with 0, rq deletes the job with several reads
                    # of Redis; with a TTL, three EXPIREs in the pipeline it runs anyway)
                    job_queue(queue).enqueue(job, *args, at_front=at_front)
                except REDIS_DOWN:
                    with suppress(*REDIS_DOWN):  # or the flag would merge the retry into nothing
                        connection.delete(flag)
                    raise

    transaction.on_commit(queue_it)


def schedule_repository_refresh(repo_id: int, ref: str = "", default_branch: str = "", *,
                                at_front: bool = False) -> None:
    """Queue refresh_repository for a move of `ref` (every app without one), merged with one
    still waiting for the same ref; polling.py calls it when ls-remote shows a ref moved.
    QueueUnavailable when Redis cannot be reached."""
    queue_once(repository_refresh_flag(repo_id, ref), "apps.applications.jobs.refresh_repository", repo_id,
                *((ref, default_branch) if ref else ()), at_front=at_front)


def enqueue_operation(op: Operation) -> None:
    """Queue the operation's job once its row is committed. If the queue cannot take it, the
    operation is deleted (it never started, and a Pending row would block the app's next sync
    until reaped) and QueueUnavailable raised."""
    job_id = f"operation-{op.pk}"
    Operation.objects.filter(pk=op.pk).update(job_id=job_id)
    op.job_id = job_id

    def queue_it():
        try:
            with queue_errors(f"the {op.kind} of {op.application.name}"):
                # Someone's click goes ahead of background work; automated syncs wait their turn.
                job = ("apps.applications.jobs.delete_application"
                       if op.kind == Operation.Kind.DELETE else "apps.applications.jobs.run_operation")
                job_queue(SYNC_QUEUE).enqueue(
                    job, op.pk, job_id=job_id,
                    job_timeout=settings.GITOPS_UI_OPERATION_TIMEOUT, at_front=not op.automated)
        except QueueUnavailable:
            Operation.objects.filter(pk=op.pk, phase=Operation.Phase.PENDING).delete()
            raise

    transaction.on_commit(queue_it)
