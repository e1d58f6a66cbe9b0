"""RQ entry points of the core app."""
from . import services


def heartbeat() -> dict:
    return services.worker_heartbeat()
