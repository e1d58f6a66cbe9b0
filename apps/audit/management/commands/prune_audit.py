from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.audit import services
from apps.audit.context import acting_as


class Command(BaseCommand):
    help = ("Delete audit log entries older than GITOPS_UI_AUDIT_RETENTION_DAYS (or --days); "
            "the reconciler does the same every hour. 0 days keeps everything.")

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=None,
                            help=f"keep this many days instead of the setting "
                                 f"({settings.GITOPS_UI_AUDIT_RETENTION_DAYS})")

    def handle(self, *args, **opts):
        days = settings.GITOPS_UI_AUDIT_RETENTION_DAYS if opts["days"] is None else opts["days"]
        if days < 0:
            raise CommandError(f"--days must be 0 (keep everything) or more, not {days}")
        if days == 0:
            self.stdout.write("retention is 0 days: every entry is kept")
            return
        with acting_as("manage.py"):
            deleted = services.prune_expired(days)
        self.stdout.write(f"deleted {deleted} entr{'y' if deleted == 1 else 'ies'} older than "
                          f"{days} day{'s' if days != 1 else ''}")
