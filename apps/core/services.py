"""Platform-level actions: readiness checks and worker heartbeats."""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.utils import timezone

from .events import SYSTEM_GROUP, publish
from apps.core.queues import job_queue


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str = ""


def _describe(exc: Exception) -> str:
    # First line only: driver messages can run long, and we never echo connection URLs.
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"


def check_database() -> CheckResult:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return CheckResult("database", False, _describe(exc))
    return CheckResult("database", True)


def check_redis() -> CheckResult:
    import redis

    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        client.ping()
        client.close()
    except Exception as exc:
        return CheckResult("redis", False, _describe(exc))
    return CheckResult("redis", True)


def readiness() -> list[CheckResult]:
    return [check_database(), check_redis()]


def worker_heartbeat() -> dict:
    """Report this worker's presence and the queue depths to every live dashboard."""
    beat = {
        "type": "worker.heartbeat",
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "at": timezone.now().isoformat(),
        "queues": {name: job_queue(name).count for name in settings.RQ_QUEUES},
    }
    publish(SYSTEM_GROUP, beat)
    return beat
