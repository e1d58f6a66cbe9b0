"""Live events of one application (status, operation progress), relayed to its page."""
from channels.db import database_sync_to_async

from apps.core.consumers import GroupRelayConsumer
from apps.core.events import group_for

from .models import Application


class ApplicationEventsConsumer(GroupRelayConsumer):
    async def may_subscribe(self, user) -> bool:
        if not await super().may_subscribe(user):
            return False
        self.app_id = await self._app_id(self.scope["url_route"]["kwargs"]["name"])
        return self.app_id is not None

    async def group_name(self) -> str:
        return group_for("application", self.app_id)

    @database_sync_to_async
    def _app_id(self, name: str):
        return Application.objects.filter(name=name).values_list("pk", flat=True).first()
