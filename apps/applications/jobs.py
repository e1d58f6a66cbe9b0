"""RQ entry points: look the object up, call one service.

The engine worker runs many of these at once, on threads (apps.core.worker). A refresh of one
application, and a push's refresh of one repository and ref, run one at a time per process: a
second one asked for while the first runs is not started beside it (holding a thread, and on a
hung git server a thread per request) but queued again once the first ends.
"""
import logging
import threading

from . import queueing, refreshing, services
from .models import Application

log = logging.getLogger(__name__)


class _OneAtATime:
    """Keys being worked on in this process, and whether the work was asked for again meanwhile."""

    def __init__(self):
        self._lock = threading.Lock()
        self._again: dict[object, bool] = {}

    def start(self, key) -> bool:
        with self._lock:
            if key in self._again:
                self._again[key] = True
                return False
            self._again[key] = False
            return True

    def finish(self, key) -> bool:
        """End the work on `key`; True when it was asked for again while it ran."""
        with self._lock:
            return self._again.pop(key, False)


_running = _OneAtATime()


def _once(key, work, again) -> None:
    if not _running.start(key):
        return
    try:
        work()
    finally:
        if _running.finish(key):
            try:
                again()
            except Exception:  # Redis away: the periodic refresh catches up
                log.warning("could not queue again %s", key, exc_info=True)


def refresh(app_name: str, hard: bool = False):
    def work():
        app = Application.objects.select_related("repository", "cluster", "project").filter(
            name=app_name).first()
        if app:
            refreshing.refresh_now(app, hard=hard)

    # Asked again while it ran: mostly watch events of the change it was making. A hard refresh
    # has its own key: merged into a plain one running, it would not render again.
    _once(("app", app_name, hard), work,
          lambda: queueing.schedule_refresh_by_name(app_name, background=True))


def refresh_repository(repository_id: int, ref: str = "", default_branch: str = ""):
    _once(("repository", repository_id, ref),
          lambda: refreshing.refresh_repository(repository_id, ref, default_branch),
          lambda: queueing.schedule_repository_refresh(repository_id, ref, default_branch,
                                                       at_front=True))


def refresh_due_repository(repository_id: int, app_ids: list[int]):
    return refreshing.refresh_due_repository(repository_id, app_ids)


def run_operation(operation_id: int):
    services.run_operation(operation_id)


def refresh_due():
    return refreshing.refresh_due()


def reap_stale_operations():
    return services.reap_stale_operations()


def poll_repositories():
    from . import polling

    return polling.poll_due()


def delete_application(operation_id: int):
    services.run_deletion(operation_id)
