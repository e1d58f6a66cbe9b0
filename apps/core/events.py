"""Live events: workers publish to a channel group named after the object; consumers relay.

Group names follow `<kind>.<id>` (e.g. `application.42`); `system` carries platform-wide events.
"""
from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable

from channels.layers import get_channel_layer

SYSTEM_GROUP = "system"
RELAY_TYPE = "event.relay"  # consumers handle it in their event_relay method


def group_for(kind: str, pk) -> str:
    return f"{kind}.{pk}"


_published: list[Callable[[str, dict], None]] = []


def on_publish(callback: Callable[[str, dict], None]) -> None:
    """Call `callback(group, event)` after each publish in this process (caches that must
    know what changed, e.g. apps/applications/listcache.py)."""
    if callback not in _published:
        _published.append(callback)


PUBLISH_TIMEOUT = 10  # seconds; Redis answers in milliseconds, or is down


def publish(group: str, event: dict) -> None:
    """Send `event` (JSON-serialisable) to every websocket subscribed to `group`; raises what
    the channel layer raises (Redis unreachable)."""
    message = {"type": RELAY_TYPE, "event": event}
    asyncio.run_coroutine_threadsafe(get_channel_layer().group_send(group, message),
                                     _publisher_loop()).result(PUBLISH_TIMEOUT)
    for callback in _published:
        callback(group, event)


_loop: tuple[int, asyncio.AbstractEventLoop] | None = None
_loop_lock = threading.Lock()


def _publisher_loop() -> asyncio.AbstractEventLoop:
    """One event loop per process, on a thread of its own, that every publish runs on.

    async_to_sync from a thread without a loop starts a new loop per call, and the channel
    layer opens a new Redis connection pool per loop: a connection per status change. A forked
    process (a build) gets its own loop: threads do not survive a fork."""
    global _loop
    with _loop_lock:
        if _loop is None or _loop[0] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="events-publisher", daemon=True).start()
            _loop = (os.getpid(), loop)
        return _loop[1]
