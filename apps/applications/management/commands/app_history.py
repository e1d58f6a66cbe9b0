from apps.applications.api.serializers import HistoryEntrySerializer

from ._common import AppCommand, short


class Command(AppCommand):
    help = "List an application's deployments, newest first (rollback targets)."

    def handle(self, *args, **opts):
        entries = self.app(opts["name"]).history.all()
        if opts["json"]:
            return self.json(HistoryEntrySerializer(entries, many=True).data)
        self.table(["ID", "SHA", "REVISION", "DEPLOYED", "BY"],
                   [[e.pk, short(e.sha), e.revision, e.deployed_at.strftime("%Y-%m-%d %H:%M:%S"),
                     e.deployed_by] for e in entries])
