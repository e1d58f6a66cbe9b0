"""The application list (page and API) served from Redis while no application changed.

Rendering the list of 1,000 applications costs the web process ~60 ms of CPU (a page of rows,
the filters' choices, the counts); 50 people looking at an unchanged list must cost a Redis
call each instead. An entry is kept per everything that decides what the list shows:

- who looks: the page by the user (its header names them) and their roles per project; the
  API by the projects the caller sees and the roles held in them;
- the request: scheme, host, path and query string (filters, sort, page), and the variant
  (page, fragment, JSON format);

and is served only while the data version it was rendered at is current: a Redis counter
bumped by every change an application's row shows: a status a worker publishes
(apps/core/events.py), a save or delete of an application, its history (last sync), an
operation (started with an .update() of the row: a pinned revision, a deletion), its project,
cluster or repository.

An entry is also rendered again after TTL seconds, so "3 minutes ago" stays about right and a
change written by a bare .update() that publishes nothing (reconciled_at, written by every
refresh; an unpin) shows within TTL. Redis away: every request renders, as without a cache.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable

import redis
from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from apps.clusters.models import Cluster
from apps.core import events
from apps.repositories.models import Repository

from .models import Application, HistoryEntry, Operation, Project
from .rules import project_ranks, visible_project_ids

log = logging.getLogger(__name__)

VERSION_KEY = "gitops-ui:app-list:version"
ENTRY_PREFIX = "gitops-ui:app-list:"
TTL = 10  # seconds after which an entry is rendered again, even with no change
KEEP = 60  # seconds an entry nobody asks for stays in Redis
# Events on an application's group that change nothing the list shows (operation progress).
UNLISTED_EVENTS = {"operation"}

_client: redis.Redis | None = None
_lookup_script = None  # _LOOKUP, registered with Redis on first use
_client_lock = threading.Lock()
_render_locks: dict[str, threading.Lock] = {}
_render_locks_guard = threading.Lock()


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                # One client (one connection pool) per process: a request must not open a
                # connection of its own.
                _client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2,
                                               socket_connect_timeout=2)
    return _client


# --- the version ---------------------------------------------------------------------------------
def bump() -> None:
    """Every cached list is stale from now on."""
    try:
        _redis().incr(VERSION_KEY)
    except redis.RedisError as exc:  # the entries expire within TTL anyway
        log.warning("could not mark the cached application lists stale: %s", exc)


def changed() -> None:
    """Bump now and again once the current transaction commits: a reader that renders between
    the change and the commit stores the old rows under the first bump's version only. (Now as
    well: a transaction that is rolled back still made no list stale; a test's never commits.)"""
    bump()
    if transaction.get_connection().in_atomic_block:  # outside one, on_commit would run at once
        transaction.on_commit(bump)


def _on_save_or_delete(sender, **kwargs) -> None:
    changed()


def _on_publish(group: str, event: dict) -> None:
    if group.startswith("application.") and event.get("type") not in UNLISTED_EVENTS:
        changed()


# Operation: its creation comes with a change written by .update() (a pinned rollback's
# revision, a delete's `deletion`), which sends no signal of its own.
for _model in (Application, HistoryEntry, Operation, Project, Cluster, Repository):
    post_save.connect(_on_save_or_delete, sender=_model, dispatch_uid=f"app-list-{_model.__name__}")
    post_delete.connect(_on_save_or_delete, sender=_model,
                        dispatch_uid=f"app-list-del-{_model.__name__}")
events.on_publish(_on_publish)


# --- who looks -----------------------------------------------------------------------------------
def viewer_of_page(user) -> tuple:
    """What the page shows differently per viewer: their name and flags (header, admin links)
    and their roles (visible projects, buttons; a platform admin sees and may do everything)."""
    admin = visible_project_ids(user) is None
    return (user.pk, user.get_username(), user.is_superuser, user.is_staff,
            "all" if admin else sorted(project_ranks(user).items()))


def viewer_of_api(user) -> tuple:
    """What the API's rows depend on: the projects seen (all, for platform admins) and roles."""
    ids = visible_project_ids(user)
    return ("all",) if ids is None else ("projects", sorted(project_ranks(user).items()))


# --- the cache -----------------------------------------------------------------------------------
# One round trip for a hit: the data version and the entry, stored as
# b"<version> <rendered at>\n" + the rendered bytes.
_LOOKUP = """
return {redis.call('GET', KEYS[1]) or '0', redis.call('GET', KEYS[2])}
"""


def cached(parts: tuple, render: Callable[[], bytes]) -> bytes:
    """The bytes `render()` returns for `parts` at the current data version.

    One entry per viewer and URL (a new version replaces it: Redis holds no pile of dead
    versions). Rendered once per version however many requests ask at the same time: the others
    wait for it. Past TTL with the version unchanged, one request renders it again while the
    others are still answered with the entry they found, instead of all waiting."""
    key = ENTRY_PREFIX + hashlib.sha256(repr(parts).encode()).hexdigest()
    try:
        version, entry = _lookup(keys=[VERSION_KEY, key])
    except redis.RedisError:
        return render()
    rendered_at, body = _parse(entry, version)
    if body is not None and time.time() - rendered_at < TTL:
        return body
    lock = _render_lock(key)
    if body is not None:  # the same version, only older than TTL
        if not lock.acquire(blocking=False):
            return body
    else:
        lock.acquire()
        # Rendered meanwhile by the request this one waited for?
        rendered_at, body = _parse(_get(key), version)
        if body is not None:
            lock.release()
            return body
    try:
        rendered_at = time.time()
        body = render()
        try:
            _redis().set(key, b"%s %f\n" % (version, rendered_at) + body, ex=KEEP)
        except redis.RedisError:
            pass
    finally:
        lock.release()
    return body


def _parse(entry: bytes | None, version: bytes) -> tuple[float, bytes | None]:
    """(rendered at, body) of an entry rendered at `version`; (0, None) for any other."""
    if not entry:
        return 0.0, None
    header, _, body = entry.partition(b"\n")
    entry_version, _, rendered_at = header.partition(b" ")
    if entry_version != version:
        return 0.0, None
    return float(rendered_at), body


def _lookup(keys: list, args: list | None = None) -> list:
    global _lookup_script
    if _lookup_script is None:
        _lookup_script = _redis().register_script(_LOOKUP)
    return _lookup_script(keys=keys, args=args or [])


def _get(key: str) -> bytes | None:
    try:
        return _redis().get(key)
    except redis.RedisError:
        return None


class _render_lock:
    """An in-process lock per key: 50 readers arriving after a change render the list once."""

    def __init__(self, key: str):
        self.key = key
        with _render_locks_guard:
            self.lock = _render_locks.setdefault(key, threading.Lock())

    def acquire(self, blocking: bool = True) -> bool:
        return self.lock.acquire(blocking)

    def release(self) -> None:
        self.lock.release()
        with _render_locks_guard:
            if not self.lock.locked():
                _render_locks.pop(self.key, None)
