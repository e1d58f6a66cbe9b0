"""Waiting for something a real system does in its own time (a watch event, a controller)."""
import time


def until(produce, predicate, timeout=30, interval=0.1):
    """Call produce() until predicate(value) holds or time runs out; return the last value
    (the caller's assert then shows what it was)."""
    deadline = time.monotonic() + timeout
    while True:
        value = produce()
        if predicate(value) or time.monotonic() > deadline:
            return value
        time.sleep(interval)
