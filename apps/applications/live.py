"""Changes seen by the watch caches → a refresh of the application that tracks the object.

This is how health turns from Progressing to Healthy on the page without polling, and how
self-heal notices a hand edit within a second. Refresh requests are merged per application
(queueing.schedule_refresh_by_name), so a rollout's many status updates cost a few refreshes.
It runs in watch threads: Redis only, no database.
"""
import logging

from apps.engine.resources import tracked_by

log = logging.getLogger(__name__)


def on_live_change(cluster_id: int, key, obj: dict, deleted: bool) -> None:
    name = tracked_by(obj) if obj else None
    if not name:
        return
    from . import queueing

    try:
        # Background: behind pushes and clicks, which someone is waiting for.
        queueing.schedule_refresh_by_name(name, background=True)
    except Exception:  # never let a watch thread die
        log.exception("could not schedule a refresh of %s after a change to %s", name, key)
