import os

from django.core.management.base import BaseCommand

from apps.accounts.services import ensure_admin


class Command(BaseCommand):
    help = ("Create an admin account if no superuser exists. Password from "
            "GITOPS_UI_ADMIN_PASSWORD, else generated and printed once.")

    def handle(self, *args, **options):
        username = os.environ.get("GITOPS_UI_ADMIN_USER", "admin")
        generated = ensure_admin(username, os.environ.get("GITOPS_UI_ADMIN_EMAIL", ""),
                                 os.environ.get("GITOPS_UI_ADMIN_PASSWORD") or None)
        if generated:
            self.stdout.write(f"Created admin account {username!r} with password: {generated}\n"
                              "It is shown only this once; change it under /admin/.")
