"""Polling: a commit goes live within seconds even where no webhook is configured.

Every GITOPS_UI_POLL_INTERVAL seconds the reconciler polls (poll_due, on its own thread, not
queued behind other work; enqueue_poll queues it as a job instead). A poll asks each
repository that has applications for its refs (one `git ls-remote`, however many apps use it)
and compares them with the refs of the last poll, kept in Redis. An unchanged repository costs
that one call and nothing else. When refs moved, the webhook path takes over: the refresh of that
repository for each moved ref (queueing.schedule_repository_refresh → refresh_repository, which
refreshes only the apps that track it, merged with a refresh already queued for it). The full
refresh every GITOPS_UI_REFRESH_INTERVAL stays the safety net.

One repository never holds up another: each ls-remote runs in a small thread pool and is bounded
by GIT_TIMEOUT; the job waits at most JOB_WAIT for them and a slower call finishes on its own
thread (a claim in Redis keeps a second poll off that repository meanwhile). A repository whose
server fails or hangs is polled less often, its interval doubling up to BACKOFF_CAP, and at the
normal pace again from its first answer; the refs it had are kept, so a commit pushed during the
outage is picked up when the server is back.

The same Redis hash keeps, per ref, what the last refresh of that ref handled (Handled, written
by refreshing.refresh_repository): a moved ref that a webhook already refreshed then costs the
queued job's call to the git server (a fetch that finds nothing new) and no refresh, and a
webhook carrying that commit nothing at all.

It lives with the applications, not the repositories: what a moved ref means (which apps follow
it, the refresh job) is theirs, and repositories know nothing of applications.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import suppress
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.db import connection as db_connection

from apps.core.queues import REDIS_DOWN, QueueUnavailable, job_queue, redis_connection
from apps.engine.source import GitCredentials
from apps.repositories import services as repositories
from apps.repositories.models import Repository

from . import queueing

log = logging.getLogger(__name__)

QUEUE = queueing.SYNC_QUEUE
GIT_TIMEOUT = 10.0  # seconds one ls-remote may take; a healthy server answers in milliseconds
JOB_WAIT = 5.0  # seconds the job waits for its calls; a slower one goes on in the background
BACKOFF_CAP = 300.0  # seconds: the longest a failing repository waits between two polls
THREADS = 8  # calls at once, per worker process
STATE_TTL = 24 * 3600  # state of a repository no longer polled (deleted) goes away by itself
QUEUED_FLAG = "gitops-ui:poll-queued"


def _state_key(repo_id: int) -> str:
    return f"gitops-ui:poll:{repo_id}"


def _claim_key(repo_id: int) -> str:
    return f"gitops-ui:poll-claim:{repo_id}"


@dataclass(frozen=True)
class Target:
    """What a poll thread needs: no model instance, so no database access off the job's thread."""
    id: int
    url: str
    credentials: GitCredentials


# --- the schedule --------------------------------------------------------------------------------
def enqueue_poll() -> None:
    """Queue one poll job unless one is still waiting (a busy queue does not pile them up).
    Ahead of background refreshes: finding a pushed commit takes milliseconds."""
    redis = redis_connection(QUEUE)
    if redis.set(QUEUED_FLAG, 1, nx=True, ex=120):
        job_queue(QUEUE).enqueue("apps.applications.jobs.poll_repositories", at_front=True,
                                           job_timeout=60, result_ttl=0)


def poll_due() -> int:
    """Poll every repository that has applications and is not backing off; return how many
    were polled. When it returns, the refreshes of moved refs are queued, except for a server
    slower than JOB_WAIT (its thread queues them when it answers)."""
    redis = redis_connection(QUEUE)
    redis.delete(QUEUED_FLAG)  # a poll asked for from now on must queue a new job
    interval = settings.GITOPS_UI_POLL_INTERVAL
    if interval <= 0:
        return 0
    # Chart apps' repositories are no Git: their refresh reads the chart's versions.
    repos = list(Repository.objects.filter(applications__isnull=False, applications__chart="")
                 .distinct().only("id", "url", "username", "password"))
    now = time.time()
    with redis.pipeline(transaction=False) as pipe:
        for repo in repos:
            pipe.hget(_state_key(repo.pk), "next")
        next_due = pipe.execute()
    due = [repo for repo, at in zip(repos, next_due) if at is None or float(at) <= now]
    with redis.pipeline(transaction=False) as pipe:
        for repo in due:  # a repository still being polled (a slow server) is left to that poll
            pipe.set(_claim_key(repo.pk), 1, nx=True, ex=int(GIT_TIMEOUT) + 5)
        claimed = [repo for repo, ok in zip(due, pipe.execute()) if ok]
    targets = [Target(r.pk, r.url, repositories.credentials(r)) for r in claimed]
    wait([_pool().submit(_poll_on_pool_thread, target) for target in targets], timeout=JOB_WAIT)
    return len(targets)


@lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    # One per process, kept between jobs: a call still running when its job ended finishes here.
    return ThreadPoolExecutor(THREADS, thread_name_prefix="git-poll")


def _poll_on_pool_thread(target: Target) -> list[str]:
    try:
        return poll_repository(target)
    finally:
        db_connection.close()  # queueing a refresh may have opened one on this thread


@lru_cache(maxsize=1)
def _git():
    # The shared clone cache's client (askpass helper, protocol limits), with a short bound on
    # each call: a poll that takes longer is better tried again later than waited for.
    client = copy.copy(repositories.repo_cache())
    client.timeout = GIT_TIMEOUT
    return client


# --- one repository ------------------------------------------------------------------------------
def poll_repository(target: Target) -> list[str]:
    """One ls-remote; queue the refresh of each moved ref; return the moved refs. A failure is
    logged and backs the repository off; it never raises."""
    redis = redis_connection(QUEUE)
    key = _state_key(target.id)
    try:
        failures, digest = redis.hmget(key, "failures", "digest")
        failures = int(failures or 0)
        try:
            refs = _git().ls_remote(target.url, target.credentials)
        except Exception as exc:  # SourceError mostly; whatever it is, the next turn retries
            _back_off(redis, target, failures + 1, exc)
            return []
        text = json.dumps(refs, sort_keys=True)
        new_digest = hashlib.sha256(text.encode()).hexdigest()
        seen = digest.decode() if digest is not None else None
        moved = []
        if seen is not None and seen != new_digest:
            # Only now the full list (it can be long: every tag): the common case reads 64 bytes.
            moved = moved_refs(json.loads(redis.hget(key, "refs") or b"{}"), refs)
            for ref in moved:
                # Like a webhook: someone pushed and waits, so ahead of background refreshes.
                queueing.schedule_repository_refresh(target.id, ref, default_branch(refs),
                                                     at_front=True)
        if seen != new_digest or failures:
            # Written only after the refreshes are queued: if queueing failed, the next poll
            # sees the same move and tries again.
            redis.hset(key, mapping={"refs": text, "digest": new_digest, "failures": 0,
                                     "next": 0, "error": ""})
        if failures:
            log.info("polling %s works again after %d failure(s)", target.url, failures)
        return moved
    except (QueueUnavailable, *REDIS_DOWN):
        log.warning("polling %s: the job queue (Redis) is unreachable; next turn retries",
                    target.url)
        return []
    except Exception:  # a bug: logged, and this repository is polled again next turn
        log.exception("polling %s failed", target.url)
        return []
    finally:
        with suppress(*REDIS_DOWN), redis.pipeline(transaction=False) as pipe:
            pipe.delete(_claim_key(target.id))
            pipe.expire(key, STATE_TTL)
            pipe.execute()


def _back_off(redis, target: Target, failures: int, exc: Exception) -> None:
    delay = backoff_delay(failures)
    redis.hset(_state_key(target.id), mapping={
        "failures": failures, "next": time.time() + delay, "error": str(exc)})
    # SourceError messages are redacted by the engine: no credential reaches the log.
    log.warning("polling %s failed (%d in a row): %s; next try in %.0f s",
                target.url, failures, exc, delay)


def backoff_delay(failures: int) -> float:
    """Seconds before the next poll after `failures` failures in a row: the interval, doubled
    per failure, at most BACKOFF_CAP."""
    interval = settings.GITOPS_UI_POLL_INTERVAL
    return min(interval * 2 ** min(failures, 30), max(BACKOFF_CAP, interval))


# --- what was refreshed (shared with refreshing.refresh_repository) ------------------------------
# Kept in the same hash as the poll state (one key per repository, same lifetime), but apart from
# its "refs": those are what the last poll *saw*, and writing them from a refresh would hide from
# polling a ref that moved in the same ls-remote but was not the one refreshed.
@dataclass(frozen=True)
class Handled:
    """The last refresh of the apps following one ref: the sha ls-remote gave for the ref ("":
    the ref did not exist), its peeled commit for an annotated tag, and the apps whose refresh
    failed at it (still to be retried)."""
    sha: str
    peeled: str = ""
    failed: tuple[int, ...] = ()

    def covers(self, sha: str) -> bool:
        """Whether `sha` (a ref's value, or a webhook's `after`) was refreshed with no failure."""
        return not self.failed and bool(sha) and sha in (self.sha, self.peeled)


def _handled_field(ref: str) -> str:
    return f"handled:{ref}"


def handled(repo_id: int, ref: str) -> Handled | None:
    """What refreshing.refresh_repository last recorded for `ref`; None when nothing was."""
    raw = redis_connection(QUEUE).hget(_state_key(repo_id), _handled_field(ref))
    if raw is None:
        return None
    data = json.loads(raw)
    return Handled(data["sha"], data.get("peeled", ""), tuple(data.get("failed", ())))


def record_handled(repo_id: int, ref: str, record: Handled) -> None:
    key = _state_key(repo_id)
    with redis_connection(QUEUE).pipeline(transaction=False) as pipe:
        pipe.hset(key, _handled_field(ref), json.dumps(
            {"sha": record.sha, "peeled": record.peeled, "failed": list(record.failed)}))
        pipe.expire(key, STATE_TTL)  # also when polling is off (nothing else sets it then)
        pipe.execute()


def state(repo_id: int) -> dict:
    """What polling knows of a repository: failures in a row, next poll (epoch s), last error."""
    raw = redis_connection(QUEUE).hgetall(_state_key(repo_id))
    out = {k.decode(): v.decode() for k, v in raw.items()}
    return {"failures": int(out.get("failures", 0)), "next": float(out.get("next") or 0),
            "error": out.get("error", ""), "known": "digest" in out}


# --- what moved ----------------------------------------------------------------------------------
def moved_refs(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The refs whose commit changed, appeared or disappeared. A tag's peeled entry (`^{}`)
    counts as the tag; HEAD only when no moved branch explains it (the default branch changed)."""
    names = {ref.removesuffix("^{}") for ref in before.keys() | after.keys()
             if before.get(ref) != after.get(ref)}
    if "HEAD" in names and any(ref.startswith("refs/heads/") and after.get(ref) == after.get("HEAD")
                               for ref in names):
        names.discard("HEAD")
    return sorted(names)


def default_branch(refs: dict[str, str]) -> str:
    """The branch HEAD points at, when ls-remote's answer says it unambiguously; "" otherwise,
    and then a push to any branch refreshes the apps following HEAD (refreshing.tracks_ref)."""
    head = refs.get("HEAD")
    branches = [r.removeprefix("refs/heads/") for r, sha in refs.items()
                if r.startswith("refs/heads/") and sha == head]
    return branches[0] if head and len(branches) == 1 else ""
