"""Shared by the app_* commands: argument conventions, lookup, table and JSON output.

Every command prints a human-readable table, or with --json the same data as the REST API
returns (so no secret can appear: the API serializers never include one)."""
import json

from django.core.management.base import BaseCommand, CommandError

from apps.applications.models import Application


class AppCommand(BaseCommand):
    takes_name = True

    def add_arguments(self, parser):
        if self.takes_name:
            parser.add_argument("name", help="application name")
        parser.add_argument("--json", action="store_true", help="print JSON for machines")

    def app(self, name: str) -> Application:
        app = Application.objects.select_related("project", "repository", "cluster").filter(
            name=name).first()
        if app is None:
            raise CommandError(f"no application named {name!r}")
        return app

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
