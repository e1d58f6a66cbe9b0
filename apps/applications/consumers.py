"""Live events of one application (status, operation progress), relayed to its page."""
from channels.db import database_sync_to_async

from apps.core.consumers import GroupRelayConsumer
from apps.core.events import group_for

from .models import Application


class ApplicationEventsConsumer(GroupRelayConsumer):
    async def may_subscribe(self, user) -> bool:
        if not await super().may_subscribe(user):
            return False
        self.app_id = await self._visible_app_id(user, self.scope["url_route"]["kwargs"]["name"])
        return self.app_id is not None

    async def group_name(self) -> str:
        return group_for("application", self.app_id)

    @database_sync_to_async
    def _visible_app_id(self, user, name: str):
        app = Application.objects.filter(name=name).first()
        return app.pk if app and user.has_perm("applications.view_application", app) else None
