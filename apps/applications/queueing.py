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


def refresh_flag(app_name: str, background: bool = False) -> str:
    return f"gitops-ui:{'background-' if background else ''}refresh-queued:{app_name}"


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


def started_refresh(app_name: str) -> None:
    """The app's refresh starts (its flags in Redis are already cleared): a change from now on
    must queue another one."""
    with _merge_lock:
        _background_queued.pop(app_name, None)
        _refresh_starts[app_name] = _refresh_starts.get(app_name, 0) + 1


def forget_local_merges() -> None:
    """Forget which background refreshes this process saw queued (tests, after emptying the
    queues and their flags)."""
    with _merge_lock:
        _background_queued.clear()


def schedule_refresh_by_name(app_name: str, *, background: bool = False) -> None:
    """Refresh soon, in a worker; requests made while one is still queued are merged.
    `background`: nobody waits for it (a change seen by a watch), so behind pushes and clicks,
    and compared with the commit resolved last (no git call).

    Takes a name so watch threads can call it without touching the database.
    """
    if background:  # its own flag: a click is not merged into a refresh queued behind others
        with _merge_lock:
            if time.monotonic() - _background_queued.get(app_name, -LOCAL_MERGE) < LOCAL_MERGE:
                return
            starts = _refresh_starts.get(app_name, 0)
        queue_once(refresh_flag(app_name, background=True), "apps.applications.jobs.refresh", app_name,
                   False, True, queue=BACKGROUND_QUEUE)  # not hard; a cluster change: no git call
        with _merge_lock:  # unless the refresh started meanwhile: then nothing may be queued
            if _refresh_starts.get(app_name, 0) == starts:
                _background_queued[app_name] = time.monotonic()
    else:
        queue_once(refresh_flag(app_name), "apps.applications.jobs.refresh", app_name)


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
