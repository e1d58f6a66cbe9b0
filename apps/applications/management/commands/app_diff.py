import sys

from apps.applications import refreshing

from ._common import AppCommand, resource_key

ERRORS = ("ComparisonError", "ClusterError")


class Command(AppCommand):
    help = ("Compare an application with Git and the cluster now and print each resource's "
            "differences (JSON pointers). Exit code 0 in sync, 1 out of sync, 2 if it cannot compare.")

    def handle(self, *args, **opts):
        app = refreshing.compare_now(self.app(opts["name"]))
        errors = [c for c in app.conditions if c.get("type") in ERRORS]
        changed = [r for r in app.resources if r.get("status") != "Synced"]
        if opts["json"]:
            self.json({"application": app.name, "sync": app.sync_status,
                       "target_sha": app.target_sha, "errors": errors, "resources": changed})
        else:
            for c in errors:
                self.stderr.write(f"{c['type']}: {c['message']}")
            for r in changed:
                self.stdout.write(f"{r['status']}  {resource_key(r)}"
                                  f"{'  (requires pruning)' if r.get('requires_pruning') else ''}")
                for pointer in r.get("differences") or []:
                    self.stdout.write(f"    {pointer}")
                if r.get("error"):
                    self.stdout.write(f"    error: {r['error']}")
            if not errors and not changed:
                self.stdout.write(f"{app.name} is {app.sync_status}")
        if errors:
            sys.exit(2)
        if app.sync_status == "OutOfSync":
            sys.exit(1)
