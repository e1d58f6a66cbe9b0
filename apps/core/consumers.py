"""Websocket consumers: authorise the subscriber, then relay group events unchanged."""
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from .events import SYSTEM_GROUP


class GroupRelayConsumer(AsyncJsonWebsocketConsumer):
    """Subclasses name the group and decide who may listen; nothing else happens here."""

    async def group_name(self) -> str:
        raise NotImplementedError

    async def may_subscribe(self, user) -> bool:
        return user.is_authenticated and user.is_active

    async def connect(self):
        if not await self.may_subscribe(self.scope["user"]):
            await self.close(code=4403)
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
