"""Websocket consumers: authorise the subscriber, then relay group events unchanged.

A refused subscription is accepted and closed at once with an application close code and no
data: refused before the handshake, the browser would only see 1006 (as for a network error)
and could not tell an expired session from a dropped connection (static/js/live.js)."""
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from .events import SYSTEM_GROUP

NOT_SIGNED_IN = 4401  # the page goes to the login page
FORBIDDEN = 4403  # signed in, but may not see this


class GroupRelayConsumer(AsyncJsonWebsocketConsumer):
    """Subclasses name the group and decide who may listen; nothing else happens here."""

    async def group_name(self) -> str:
        raise NotImplementedError

    async def may_subscribe(self, user) -> bool:
        return user.is_authenticated and user.is_active

    async def refuses(self) -> bool:
        """True when the subscription was refused (and the socket closed with the reason)."""
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            code = NOT_SIGNED_IN
        elif not await self.may_subscribe(user):
            code = FORBIDDEN
        else:
            return False
        await self.accept()
        await self.close(code=code)
        return True

    async def connect(self):
        if await self.refuses():
            return
        self.group = await self.group_name()
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def event_relay(self, message):
        await self.send_json(message["event"])


class SystemEventsConsumer(GroupRelayConsumer):
    """Platform-wide events (worker heartbeats) for any signed-in user."""

    async def group_name(self) -> str:
        return SYSTEM_GROUP
