"""RQ entry points (queue "sync"): look the object up, call one service."""
from .models import Application


def refresh(app_name: str):
    from . import services

    app = Application.objects.select_related("repository", "cluster", "project").filter(
        name=app_name).first()
    if app:
        services.refresh_now(app)


def refresh_repository(repository_id: int, ref: str = "", default_branch: str = ""):
    from . import services

    services.refresh_repository(repository_id, ref, default_branch)


def run_operation(operation_id: int):
    from . import services

    services.run_operation(operation_id)


def refresh_due():
    from . import services

    return services.refresh_due()


def reap_stale_operations():
    from . import services

    return services.reap_stale_operations()


def poll_repositories():
    from . import polling

    return polling.poll_due()


def delete_application(operation_id: int):
    from . import services

    services.run_deletion(operation_id)
