from apps.applications.api.serializers import ApplicationSerializer

from ._common import AppCommand, short


class Command(AppCommand):
    help = "Show one application: source, destination, status, conditions and resources."

    def handle(self, *args, **opts):
        app = self.app(opts["name"])
        if opts["json"]:
            return self.json({**ApplicationSerializer(app).data, "resources": app.resources})
        rows = [("Name", app.name), ("Project", app.project.name),
                ("Repository", app.repository.url), ("Revision", app.revision),
                ("Pinned", app.pinned_revision or "-"), ("Path", app.path),
                ("Destination", f"{app.cluster.name}/{app.namespace}"),
                ("Automated", f"{app.automated} (prune {app.prune}, self-heal {app.self_heal})"),
                ("Sync", f"{app.sync_status} to {short(app.target_sha) or '?'}"),
                ("Synced", short(app.synced_sha) or "-"),
                ("Health", f"{app.health_status} {app.health_message}".strip()),
                ("Reconciled", app.reconciled_at or "never")]
        for label, value in rows:
            self.stdout.write(f"{label + ':':<13}{value}")
        for c in app.conditions:
            self.stdout.write(f"{c.get('type')}: {c.get('message')}")
        if app.resources:
            self.stdout.write("")
            self.table(["KIND", "NAMESPACE", "NAME", "STATUS", "HEALTH"],
                       [[r["kind"], r["namespace"], r["name"], r["status"], r["health"]]
                        for r in app.resources])
