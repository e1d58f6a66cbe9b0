"""The job queue (Redis) as the web side sees it: reachable, or QueueUnavailable.

A request whose job cannot be queued must say so (503, so a webhook sender retries) rather than
answer "accepted" and leave nothing behind to do the work.
"""
import os
import threading
from contextlib import contextmanager

import django_rq
import redis.exceptions
from django.conf import settings

REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class QueueUnavailable(Exception):
    """The job queue cannot be reached: nothing was queued; the caller may try again later."""


@contextmanager
def queue_errors(what: str):
    """Turn Redis connection failures inside the block into QueueUnavailable naming `what`."""
    try:
        yield
    except REDIS_DOWN:
        # Redis' own message names its address; the caller only needs to know it is down.
        raise QueueUnavailable(f"the job queue (Redis) is unreachable: {what} could not be "
                               "queued; try again shortly") from None


_clients: dict[tuple, redis.Redis] = {}
_clients_lock = threading.Lock()


def redis_connection(queue: str = "sync") -> redis.Redis:
    """The Redis client of `queue`'s server, one per process and address: thread-safe, with
    its own connection pool. django_rq.get_connection builds a new client, so a new TCP
    connection, on every call: on a watch thread that queues a refresh per event, that was
    most of the engine's CPU."""
    config = settings.RQ_QUEUES[queue]
    key = (os.getpid(), config.get("URL"), config.get("HOST"), config.get("PORT"), config.get("DB"))
    client = _clients.get(key)
    if client is None:
        with _clients_lock:
            client = _clients.setdefault(key, django_rq.get_connection(queue))
    return client


def job_queue(name: str):
    """The RQ queue `name` on the process' shared client (redis_connection)."""
    return django_rq.get_queue(name, connection=redis_connection(name))
