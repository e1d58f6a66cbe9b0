import signal
import threading

from django.core.management.base import BaseCommand

from apps.core.reconciler import Reconciler, periodic_tasks


class Command(BaseCommand):
    help = ("Run the reconciler alone (`manage.py engine` runs it too): queue the due refreshes, "
            "poll the repositories and fail the operations of dead workers, until stopped "
            "(SIGINT or SIGTERM).")

    def handle(self, *args, **options):
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        Reconciler(periodic_tasks()).run_forever(stop)
