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
    """Keys being worked on in this process, and whether the work was asked for again meanwhile
    (and if so, whether any of those asks needed a call to the git server)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._again: dict[object, bool | None] = {}

    def start(self, key, needs_git: bool = True) -> bool:
        with self._lock:
            if key in self._again:
                self._again[key] = bool(self._again[key]) or needs_git
                return False
            self._again[key] = None
            return True

    def finish(self, key) -> bool | None:
        """End the work on `key`; None when it was not asked for again while it ran, else
        whether one of those asks needed git."""
        with self._lock:
            return self._again.pop(key, None)


_running = _OneAtATime()


def _once(key, work, again, needs_git: bool = True, skipped=None) -> None:
    """Run `work` unless the same key runs in this process; then `skipped()` (the request's
    merge flag is cleared: it is now the running one's "again", and a later request must not
    be merged into a job that will not run) and `again(needs_git)` once the running one ends."""
    if not _running.start(key, needs_git):
        if skipped is not None:
            skipped()
        return
    try:
        work()
    finally:
        asked = _running.finish(key)
        if asked is not None:
            try:
                again(asked)
            except Exception:  # Redis away: the periodic refresh catches up
                log.warning("could not queue again %s", key, exc_info=True)


def refresh(app_name: str, hard: bool = False, cluster_change: bool = False):
    """`cluster_change`: asked for by a watch event; Git is not asked again (refresh_now)."""
    def work():
        app = Application.objects.select_related("repository", "cluster", "project").filter(
            name=app_name).first()
        if app:
            refreshing.refresh_now(app, hard=hard, cluster_change=cluster_change)

    _refresh_once(app_name, work, hard, needs_git=not cluster_change)


def refresh_changed():
    """A batch of the apps whose objects the watches saw change (queueing.CHANGED_APPS)."""
    for app in refreshing.changed_apps():
        _refresh_once(app.name, lambda app=app: refreshing.refresh_changed(app), needs_git=False)


def _refresh_once(app_name: str, work, hard: bool = False, needs_git: bool = True) -> None:
    def again(needs_git: bool):
        # Mostly watch events of the change it was making: in the background, without git,
        # unless the refresh that ran compared them; a click or a change of the app's settings
        # meanwhile: a full refresh, soon.
        if needs_git or not queueing.changes_compared(app_name):
            queueing.schedule_refresh_by_name(app_name, background=not needs_git)

    # A hard refresh has its own key: merged into a plain one running, it would not render again.
    _once(("app", app_name, hard), work, again, needs_git=needs_git,
          skipped=lambda: refreshing.forget_refresh_requests(app_name, hard))


def refresh_repository(repository_id: int, ref: str = "", default_branch: str = ""):
    _once(("repository", repository_id, ref),
          lambda: refreshing.refresh_repository(repository_id, ref, default_branch),
          lambda _needs_git: queueing.schedule_repository_refresh(repository_id, ref, default_branch,
                                                                  at_front=True),
          skipped=lambda: refreshing.forget_repository_refresh_request(repository_id, ref))


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
