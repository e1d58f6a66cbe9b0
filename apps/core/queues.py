"""The job queue (Redis) as the web side sees it: reachable, or QueueUnavailable.

A request whose job cannot be queued must say so (503, so a webhook sender retries) rather than
answer "accepted" and leave nothing behind to do the work.
"""
from contextlib import contextmanager

import redis.exceptions

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
