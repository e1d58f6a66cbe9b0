import os
import sys
import threading

from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from apps.core.queues import job_queue
from apps.core.reconciler import Reconciler, periodic_tasks
from apps.core.worker import DEFAULT_THREADS, ThreadedWorker

QUEUES = ["sync", "background", "default"]  # dequeued in this order
PRIORITY = ("sync",)  # may use every thread; the others leave a few free for these


class Command(BaseCommand):
    help = ("Run the engine: the jobs of the sync, background and default queues, several at "
            "once on threads (GITOPS_UI_WORKER_THREADS), and the reconciler's schedule, until "
            "stopped (SIGINT or SIGTERM).")

    def add_arguments(self, parser):
        parser.add_argument("queues", nargs="*", default=QUEUES)
        parser.add_argument("--threads", type=int,
                            default=int(os.environ.get("GITOPS_UI_WORKER_THREADS",
                                                       DEFAULT_THREADS)))
        parser.add_argument("--no-reconciler", action="store_true",
                            help="only run jobs (another process runs `manage.py reconcile`)")
        parser.add_argument("--burst", action="store_true",
                            help="stop once the queues are empty and the jobs done")

    def handle(self, *args, **options):
        if options["threads"] < 1:
            raise CommandError("--threads (GITOPS_UI_WORKER_THREADS) must be at least 1")
        queues = [job_queue(name) for name in options["queues"]]
        worker = ThreadedWorker(queues, connection=queues[0].connection,
                                threads=options["threads"], priority=PRIORITY)
        stop = threading.Event()
        if not options["no_reconciler"] and not options["burst"]:
            threading.Thread(target=Reconciler(periodic_tasks()).run_forever, args=(stop,),
                             daemon=True, name="reconciler").start()
        connections.close_all()  # the main thread only dequeues
        level = {0: "WARNING", 1: "INFO"}.get(options["verbosity"], "DEBUG")
        try:
            worker.work(burst=options["burst"], logging_level=level)
        finally:  # a second Ctrl-C (cold stop) too
            stop.set()
            if worker.running_jobs():
                # A job stuck past the grace (a git call, a health wait) must not keep the
                # process: the launcher would kill it anyway. Its operation is failed by the
                # reaper (no heartbeat), as when the process is killed.
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(0)
