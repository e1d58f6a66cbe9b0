import sys

from django.core.management.base import CommandError

from apps.applications import services
from apps.applications.api.serializers import OperationSerializer
from apps.core.queues import QueueUnavailable

from ._common import AppCommand


class Command(AppCommand):
    help = ("Delete an application, as Argo CD does. --cascade foreground (the default) or "
            "background deletes the objects it deployed with that propagation policy (objects "
            "annotated Delete=false stay), then the application; --cascade false deletes only "
            "the application. A cascading deletion is queued for a worker, or run here with "
            "--wait (exit code 1 unless the application is gone).")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--cascade", default=services.FOREGROUND,
                            choices=[services.FOREGROUND, services.BACKGROUND, services.NO_CASCADE],
                            help="what happens to the objects it deployed (default: foreground)")
        parser.add_argument("--wait", action="store_true", help="run the deletion in this process")

    def handle(self, *args, **opts):
        app = self.app(opts["name"], "applications.delete_application")
        try:
            op = services.delete_application(app, self.user, cascade=opts["cascade"],
                                             enqueue=not opts["wait"])
        except (services.ApplicationError, QueueUnavailable) as exc:
            raise CommandError(str(exc)) from None
        if op is None:
            self._deleted_at_once(app, opts)
            return
        if opts["wait"]:
            op = services.run_deletion(op.pk) or op
        if opts["json"]:
            self.json(OperationSerializer(op).data)
        elif not opts["wait"]:
            self.stdout.write(f"operation {op.pk}: deletion of {app.name} ({opts['cascade']}) "
                              "queued; the application goes once its resources are gone")
        else:
            self.stdout.write(f"operation {op.pk}: delete {op.phase}: {op.message}")
            for r in op.resources:
                self.stdout.write(f"  {r.get('kind')} {r.get('namespace')}/{r.get('name')}: "
                                  f"{r.get('status')} {r.get('message', '')}".rstrip())
        if opts["wait"] and op.phase != "Succeeded":
            sys.exit(1)

    def _deleted_at_once(self, app, opts) -> None:
        if opts["json"]:
            self.json({"application": app.name, "deleted": True, "cascade": opts["cascade"]})
        elif opts["cascade"] == services.NO_CASCADE:
            self.stdout.write(f"deleted {app.name}; its resources stay in the cluster")
        else:
            self.stdout.write(f"deleted {app.name}; it had deployed nothing")
