"""A build's log: lines scrubbed of every credential the build handles, appended to the stored
log in chunks and published live to the build's channel group (relayed by consumers.py)."""
from __future__ import annotations

import logging
import threading
import time

from django.db.models import F, Value
from django.db.models.functions import Concat

from apps.core.events import group_for, publish

from .models import Build

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5
FLUSH_BYTES = 8192
MAX_LOG_CHARS = 2_000_000  # a runaway build does not fill the database
MASK = "***"


def build_group(build_id: int) -> str:
    return group_for("build", build_id)


class BuildLog:
    """Collects lines (from any thread), scrubs them, and writes them out from `flush()`."""

    def __init__(self, build_id: int, secrets: list[str]):
        self.build_id = build_id
        # Longest first: a secret that contains another is masked whole.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True)
        self._pending: list[str] = []
        self._size = 0
        self._written = 0
        self._last_flush = time.monotonic()
        self._lock = threading.Lock()

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def write(self, line: str) -> None:
        """Add a line; safe from the thread reading buildah's output (the flush happens on
        the caller of flush_if_due / flush)."""
        clean = self.scrub(line) + "\n"
        with self._lock:
            self._pending.append(clean)
            self._size += len(clean)

    def flush_if_due(self) -> None:
        if self._size >= FLUSH_BYTES or time.monotonic() - self._last_flush >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            chunk, self._pending, self._size = "".join(self._pending), [], 0
        self._last_flush = time.monotonic()
        if not chunk:
            return
        room = MAX_LOG_CHARS - self._written
        if room <= 0:
            return
        if len(chunk) > room:
            chunk = chunk[:room] + "\n[log truncated]\n"
        at, self._written = self._written, self._written + len(chunk)
        Build.objects.filter(pk=self.build_id).update(log=Concat(F("log"), Value(chunk)))
        try:
            publish(build_group(self.build_id),
                    {"type": "build.log", "build": self.build_id, "at": at, "chunk": chunk})
        except Exception:  # noqa: BLE001 - the stored log has it; a live view catches up
            log.warning("build %s: log chunk not published", self.build_id, exc_info=True)


def publish_status(build: Build) -> None:
    try:
        publish(build_group(build.pk), {"type": "build.status", "build": build.pk,
                                        "status": build.status, "digest": build.digest})
    except Exception:  # noqa: BLE001 - a page reloaded later shows it
        log.warning("build %s: status not published", build.pk, exc_info=True)
