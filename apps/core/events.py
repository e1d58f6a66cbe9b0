"""Live events: workers publish to a channel group named after the object; consumers relay.

Group names follow `<kind>.<id>` (e.g. `application.42`); `system` carries platform-wide events.
"""
from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

SYSTEM_GROUP = "system"
RELAY_TYPE = "event.relay"  # consumers handle it in their event_relay method


def group_for(kind: str, pk) -> str:
    return f"{kind}.{pk}"


def publish(group: str, event: dict) -> None:
    """Send `event` (JSON-serialisable) to every websocket subscribed to `group`."""
    async_to_sync(get_channel_layer().group_send)(group, {"type": RELAY_TYPE, "event": event})
