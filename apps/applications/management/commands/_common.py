"""Shared by the app_* commands: argument conventions, lookup, permission, table and JSON output.

Every command prints a human-readable table, or with --json the same data as the REST API
returns (so no secret can appear: the API serializers never include one).

`--as USER` makes a command act as that user, through the same permission check as the API,
the websockets and the admin. Without it the command acts for whoever runs it on the server,
with a platform admin's rights: that shell can read the database and the encryption key anyway.
"""
import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from apps.applications.models import Application
from apps.applications.rules import visible
from apps.audit.context import acting_as
from apps.core.access import Forbidden, require


class AppCommand(BaseCommand):
    takes_name = True

    def add_arguments(self, parser):
        if self.takes_name:
            parser.add_argument("name", help="application name")
        parser.add_argument("--json", action="store_true", help="print JSON for machines")
        parser.add_argument("--as", dest="as_user", metavar="USER", default="",
                            help="act as this user, with that user's roles")

    def execute(self, *args, **options):
        self.user = None
        if options.get("as_user"):
            self.user = get_user_model().objects.filter(username=options["as_user"],
                                                        is_active=True).first()
            if self.user is None:
                raise CommandError(f"no active user named {options['as_user']!r}")
        with acting_as("manage.py"):  # the audit log's actor when no --as user is given
            return super().execute(*args, **options)

    def app(self, name: str, perm: str = "applications.view_application") -> Application:
        """The application named `name`, if the acting user has `perm` on it."""
        app = Application.objects.select_related("project", "repository", "cluster").filter(
            name=name).first()
        if app is not None and self.user is not None:
            if not self.user.has_perm("applications.view_application", app):
                app = None  # as in the API: what one may not see is not there
            else:
                try:
                    require(self.user, perm, app)
                except Forbidden as exc:
                    raise CommandError(str(exc)) from None
        if app is None:
            raise CommandError(f"no application named {name!r}")
        return app

    def visible(self, queryset):
        return queryset if self.user is None else visible(self.user, queryset)

    def json(self, data) -> None:
        self.stdout.write(json.dumps(data, indent=2, default=str))

    def table(self, headers: list[str], rows: list[list]) -> None:
        cells = [[str(c) for c in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
        for row in cells:
            self.stdout.write("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


def resource_key(r: dict) -> str:
    return f"{r.get('group', '')}/{r.get('kind', '')}:{r.get('namespace', '')}/{r.get('name', '')}"


def short(sha: str) -> str:
    return (sha or "")[:12]
