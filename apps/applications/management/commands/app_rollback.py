from django.core.management.base import CommandError

from apps.applications import services
from apps.core.queues import QueueUnavailable
from apps.applications.api.serializers import OperationSerializer
from apps.applications.models import HistoryEntry, Operation

from ._common import AppCommand, short


class Command(AppCommand):
    help = ("Roll an application back to a history entry: --mode pin syncs that commit and pins "
            "it, turning automated sync off until unpinned (POST /api/applications/NAME/unpin); "
            "--mode git commits a revert on the tracked branch.")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--history-id", type=int, required=True, help="see app_history")
        parser.add_argument("--mode", choices=["pin", "git"], default="pin")

    def handle(self, *args, **opts):
        app = self.app(opts["name"], "applications.rollback_application")
        entry = HistoryEntry.objects.filter(pk=opts["history_id"]).first()
        if entry is None:
            raise CommandError(f"no history entry {opts['history_id']}")
        try:
            result = services.rollback(app, entry, self.user, mode=opts["mode"])
        except (services.ApplicationError, QueueUnavailable) as exc:
            raise CommandError(str(exc)) from None
        if isinstance(result, Operation):
            if opts["json"]:
                return self.json(OperationSerializer(result).data)
            self.stdout.write(f"operation {result.pk}: rollback of {app.name} to "
                              f"{short(entry.sha)} queued; {app.name} is pinned")
        elif opts["json"]:
            self.json({"application": app.name, "commit": result})
        else:
            self.stdout.write(f"reverted {app.name} to {short(entry.sha)} in Git: commit {short(result)}")
