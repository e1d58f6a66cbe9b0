"""Live events of one application (status, operation progress), relayed to its page."""
from urllib.parse import parse_qs

from channels.db import database_sync_to_async

from apps.core.consumers import GroupRelayConsumer
from apps.core.events import group_for

from .models import Application
from .rules import visible


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


class ApplicationListEventsConsumer(GroupRelayConsumer):
    """The events of the applications a list page shows (?ids=1,2,3), those the user may see;
    one socket per page instead of one per row."""

    MAX_APPS = 200  # the largest page size of the list

    async def may_subscribe(self, user) -> bool:
        if not await super().may_subscribe(user):
            return False
        query = parse_qs(self.scope.get("query_string", b"").decode())
        wanted = [int(i) for i in ",".join(query.get("ids", [])).split(",") if i.isdigit()]
        self.app_ids = await self._visible_ids(user, wanted[:self.MAX_APPS])
        return True

    async def connect(self):
        if await self.refuses():
            return
        self.groups_joined = [group_for("application", pk) for pk in self.app_ids]
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    @database_sync_to_async
    def _visible_ids(self, user, ids: list[int]) -> list[int]:
        return list(visible(user, Application.objects.filter(pk__in=ids)).values_list("pk", flat=True))
