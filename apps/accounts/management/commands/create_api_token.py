from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from apps.accounts import services
from apps.audit.context import acting_as


class Command(BaseCommand):
    help = ("Create an API token for a user and print it once (only its hash is stored). "
            "Send it as `Authorization: Token <token>`.")

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, **opts):
        user = get_user_model().objects.filter(username=opts["username"], is_active=True).first()
        if user is None:
            raise CommandError(f"no active user named {opts['username']!r}")
        with acting_as("manage.py"):
            instance, token = services.create_api_token(user)
        self.stdout.write(token)
        expiry = f"until {instance.expiry:%Y-%m-%d %H:%M} UTC" if instance.expiry else "without expiry"
        self.stderr.write(f"token for {user.get_username()}, valid {expiry}")
