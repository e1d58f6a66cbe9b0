"""RQ entry points of the notifications."""
from . import services


def deliver(delivery_id: int) -> None:
    services.deliver(delivery_id)
