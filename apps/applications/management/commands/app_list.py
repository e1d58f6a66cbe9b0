from apps.applications import services
from apps.applications.api.serializers import ApplicationSerializer

from ._common import AppCommand, short


class Command(AppCommand):
    help = "List applications with their sync and health status."
    takes_name = False

    def add_arguments(self, parser):
        super().add_arguments(parser)
        for name in ("project", "sync", "health", "search"):
            parser.add_argument(f"--{name}", default="", help=f"only applications with this {name}")

    def handle(self, *args, **opts):
        apps = self.visible(services.list_applications(
            **{k: opts[k] for k in ("project", "sync", "health", "search")}))
        if opts["json"]:
            return self.json(ApplicationSerializer(apps, many=True).data)
        self.table(["NAME", "PROJECT", "SYNC", "HEALTH", "REVISION", "TARGET", "CLUSTER",
                    "NAMESPACE"],
                   [[a.name, a.project.name, a.sync_status, a.health_status,
                     a.target_revision, short(a.target_sha), a.cluster.name, a.namespace]
                    for a in apps])
