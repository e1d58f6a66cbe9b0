import argparse
import sys

from django.core.management.base import CommandError

from apps.applications import services
from apps.core.queues import QueueUnavailable
from apps.applications.api.serializers import OperationSerializer

from ._common import AppCommand, short


class Command(AppCommand):
    help = ("Sync an application: queue the operation for a worker, or run it here with --wait "
            "(exit code 1 unless it succeeds).")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--revision", default="", help="branch, tag or commit (default: the app's)")
        parser.add_argument("--prune", action=argparse.BooleanOptionalAction, default=None,
                            help="delete resources no longer in Git (default: the app's policy)")
        parser.add_argument("--dry-run", action="store_true")
        parser.add_argument("--resource", action="append", default=[], dest="resources",
                            help="only this resource, group/kind:namespace/name (repeatable)")
        parser.add_argument("--wait", action="store_true", help="run the sync in this process")

    def handle(self, *args, **opts):
        app = self.app(opts["name"], "applications.sync_application")
        try:
            op = services.request_sync(app, self.user, revision=opts["revision"], prune=opts["prune"],
                                       dry_run=opts["dry_run"], resources=opts["resources"],
                                       enqueue=not opts["wait"])
        except (services.ApplicationError, QueueUnavailable) as exc:
            raise CommandError(str(exc)) from None
        if opts["wait"]:
            op = services.run_operation(op.pk) or op
        if opts["json"]:
            self.json(OperationSerializer(op).data)
        else:
            self.stdout.write(f"operation {op.pk}: {op.kind} of {app.name} {op.phase}"
                              f"{' at ' + short(op.sha) if op.sha else ''}"
                              f"{': ' + op.message if op.message else ''}")
            for r in op.resources:
                self.stdout.write(f"  {r.get('kind')} {r.get('namespace')}/{r.get('name')}: "
                                  f"{r.get('status')} {r.get('message', '')}".rstrip())
        if opts["wait"] and op.phase != "Succeeded":
            sys.exit(1)
