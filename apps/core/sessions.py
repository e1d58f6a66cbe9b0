"""Sessions read from Redis and written through to the database (Django's cached_db), on the
process's one Redis client.

A signed-in page view then costs a Redis GET instead of a session query. Django's own cache
objects are kept per thread *and per context*, and the web server runs every request in a
context of its own (gitops_ui/asgi.py): through `caches[...]` each request would open a new
Redis connection. Redis, not a per-process cache, so a sign-out ends the session in every web
replica at once.

A Redis that does not answer costs a page nothing: the session is read from the database, as
without a cache (cached_db already saves without it). Only ending a session (sign-out) insists
on Redis: a session left there would still sign its holder in.
"""
from __future__ import annotations

import logging

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.sessions.backends import cached_db
from django.utils.module_loading import import_string
from redis.exceptions import RedisError

from .queues import redis_connection

log = logging.getLogger(__name__)


class RedisCopies:
    """The part of Django's cache API that cached_db uses, on the shared client."""

    prefix = "gitops-ui:"

    def __init__(self):
        self.serializer = import_string(settings.SESSION_SERIALIZER)()

    def get(self, key: str):
        raw = redis_connection().get(self.prefix + key)
        return None if raw is None else self.serializer.loads(raw)

    def set(self, key: str, value, timeout: int) -> None:
        redis_connection().set(self.prefix + key, self.serializer.dumps(value), ex=max(1, timeout))

    def delete(self, key: str) -> None:
        redis_connection().delete(self.prefix + key)

    def __contains__(self, key: str) -> bool:
        return bool(redis_connection().exists(self.prefix + key))

    # The async side (Channels' websocket sessions, async views) asks the same on a thread.
    async def aget(self, key: str):
        return await sync_to_async(self.get)(key)

    async def aset(self, key: str, value, timeout: int) -> None:
        await sync_to_async(self.set)(key, value, timeout)

    async def adelete(self, key: str) -> None:
        await sync_to_async(self.delete)(key)


_copies = None


class SessionStore(cached_db.SessionStore):
    def __init__(self, session_key=None):
        global _copies
        if _copies is None:
            _copies = RedisCopies()
        self._cache = _copies  # before the base class asks for caches[...] (it never does then)
        super(cached_db.SessionStore, self).__init__(session_key)

    def load(self):
        try:
            return super().load()
        except RedisError as exc:
            log.warning("sessions: Redis did not answer (%s); reading the database",
                        type(exc).__name__)
            session = self._get_session_from_db()
            return self.decode(session.session_data) if session else {}

    async def aload(self):
        try:
            return await super().aload()
        except RedisError as exc:
            log.warning("sessions: Redis did not answer (%s); reading the database",
                        type(exc).__name__)
            session = await self._aget_session_from_db()
            return self.decode(session.session_data) if session else {}
