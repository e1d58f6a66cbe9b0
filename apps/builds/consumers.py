"""Live events of one build (log chunks, status), relayed to its page."""
from channels.db import database_sync_to_async

from apps.core.consumers import GroupRelayConsumer

from .buildlog import build_group
from .models import Build


class BuildEventsConsumer(GroupRelayConsumer):
    async def may_subscribe(self, user) -> bool:
        if not await super().may_subscribe(user):
            return False
        self.build_id = await self._visible_build_id(user, self.scope["url_route"]["kwargs"]["pk"])
        return self.build_id is not None

    async def group_name(self) -> str:
        return build_group(self.build_id)

    @database_sync_to_async
    def _visible_build_id(self, user, pk: int):
        build = Build.objects.filter(pk=pk).first()
        return build.pk if build and user.has_perm("builds.view_build", build) else None
