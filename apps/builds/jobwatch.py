"""Following a build Job in a cluster (kaniko.py; any other in-cluster builder): watches that
feed a queue, what changes in the Job's pod written as log lines, and the pod's own log.

The threads here touch no database, only the queue and the `write` callable (BuildLog.write,
which is thread-safe); the caller's thread does everything else.
"""
from __future__ import annotations

import json
import queue
import socket
import threading
from typing import Callable

from apps.engine.errors import ClusterError, ResourceError

WATCH_SECONDS = 30  # one watch request; then it is resumed from the last resourceVersion


def abort(response) -> None:
    """End another thread's read of a streamed `response` at once: shutting its socket down
    wakes the reader (close() would wait for the read to end, up to the watch's timeout)."""
    try:
        response.raw.connection.sock.shutdown(socket.SHUT_RDWR)
    except Exception:  # noqa: BLE001 - not started, or already over: nothing to end
        pass


def terminated(pod: dict | None, container: str) -> dict:
    """The `terminated` state of `container` in `pod` (exitCode, reason, message), or {}."""
    for status in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == container:
            return (status.get("state") or {}).get("terminated") or {}
    return {}


class Watch(threading.Thread):
    """Lists, then watches, the objects at `path` matching `params`, putting (kind, change,
    object) on `events`; a watch that ends is resumed from the last resourceVersion, one whose
    version expired (410) starts again from a list. ("error", "", why) after 5 failures in a
    row."""

    def __init__(self, engine, path: str, params: dict, kind: str, events: queue.Queue,
                 stop: threading.Event):
        super().__init__(daemon=True, name=f"build-watch-{kind}")
        self.engine, self.path, self.params, self.kind = engine, path, params, kind
        self.events, self.stop = events, stop
        self.response = None

    def run(self) -> None:
        version, failures = None, 0
        while not self.stop.is_set():
            try:
                if version is None:
                    listing = self.engine.request_json("GET", self.path, params=self.params,
                                                       what=f"list {self.kind}s")
                    for item in listing.get("items", []):
                        self.events.put((self.kind, "ADDED", item))
                    version = listing["metadata"]["resourceVersion"]
                version = self._watch(version)
                failures = 0
            except Exception as exc:  # noqa: BLE001 - any broken stream: resume or report
                if self.stop.is_set():
                    return  # aborted by close(): the reader may fail in any way
                failures += 1
                if failures >= 5:
                    self.events.put(("error", "", str(exc) or type(exc).__name__))
                    return
                self.stop.wait(1)

    def _watch(self, version: str) -> str | None:
        params = {**self.params, "watch": "true", "resourceVersion": version,
                  "allowWatchBookmarks": "true", "timeoutSeconds": WATCH_SECONDS}
        self.response = self.engine.request("GET", self.path, params=params, stream=True,
                                            timeout=WATCH_SECONDS + 30, what=f"watch {self.kind}s")
        with self.response:
            for line in self.response.iter_lines():
                if self.stop.is_set():
                    return version
                if not line:
                    continue
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    if obj.get("code") == 410:
                        return None  # too old: list again
                    raise ResourceError(obj.get("message", "watch error"), status=obj.get("code"))
                version = obj.get("metadata", {}).get("resourceVersion") or version
                if event.get("type") != "BOOKMARK":
                    self.events.put((self.kind, event["type"], obj))
        return version

    def close(self) -> None:
        abort(self.response)


class PodReport:
    """Writes what changes in a Job's pods (phase, scheduling, the container's state) as log
    lines, and relays a pod's own log once its container has started."""

    def __init__(self, engine, ns: str, container: str, write: Callable[[str], None],
                 stop: threading.Event, log_timeout: float):
        self.engine, self.ns, self.container, self.write = engine, ns, container, write
        self.stop, self.log_timeout = stop, log_timeout
        self.shown: dict[str, tuple] = {}
        self.relays: dict[str, LogRelay] = {}

    def seen(self, pod: dict) -> None:
        name = pod["metadata"]["name"]
        status = pod.get("status") or {}
        phase = status.get("phase", "Pending")
        unscheduled = next((c.get("message", "") for c in status.get("conditions") or []
                            if c.get("type") == "PodScheduled" and c.get("status") == "False"), "")
        container = container_state(status, self.container)
        before = self.shown.get(name, (None, None, None))
        if phase != before[0]:
            self.write(f"pod {name}: {phase}")
        if unscheduled and unscheduled != before[1]:
            self.write(f"pod {name}: not scheduled: {unscheduled}")
        if container and container != before[2]:
            self.write(f"pod {name}: container {self.container} {container}")
        self.shown[name] = (phase, unscheduled, container)
        if name not in self.relays and container and not container.startswith("waiting"):
            self.relays[name] = LogRelay(self.engine, self.ns, name, self.container, self.write,
                                         self.stop, self.log_timeout)
            self.relays[name].start()

    def final(self, label_selector: str) -> dict | None:
        """The Job's pod as the API server has it now (its termination message), its log
        relayed to the end, or, when the log could not be streamed, the log's tail a failed
        container leaves in its message; None when it cannot be read."""
        try:
            pods = self.engine.request_json(
                "GET", f"/api/v1/namespaces/{self.ns}/pods",
                params={"labelSelector": label_selector}, what="list pods")["items"]
        except (ClusterError, ResourceError):
            pods = []
        for pod in pods:
            self.seen(pod)
        for relay in self.relays.values():
            relay.join(10)
        pod = pods[-1] if pods else None
        state = terminated(pod, self.container)
        streamed = any(relay.lines for relay in self.relays.values())
        if state.get("exitCode") not in (None, 0) and not streamed:
            for line in (state.get("message") or "").splitlines():
                self.write(line)
        return pod

    def close(self) -> None:
        for relay in self.relays.values():
            relay.close()


def container_state(status: dict, container: str) -> str:
    for found in status.get("containerStatuses") or []:
        if found.get("name") != container:
            continue
        state = found.get("state") or {}
        if "waiting" in state:
            waiting = state["waiting"]
            return f"waiting: {waiting.get('reason', '')}" + (
                f": {waiting['message']}" if waiting.get("message") else "")
        if "running" in state:
            return "running"
        if "terminated" in state:
            ended = state["terminated"]
            return f"terminated: {ended.get('reason', '')} (exit {ended.get('exitCode')})"
    return ""


class LogRelay(threading.Thread):
    """Streams a container's log into the build log (when the API server can reach the node's
    kubelet; a line says so when it cannot)."""

    def __init__(self, engine, ns: str, pod: str, container: str, write: Callable[[str], None],
                 stop: threading.Event, timeout: float):
        super().__init__(daemon=True, name=f"build-log-{pod}")
        self.engine, self.ns, self.pod, self.container = engine, ns, pod, container
        self.write, self.stop, self.timeout = write, stop, timeout
        self.lines = 0
        self.response = None

    def run(self) -> None:
        try:
            self.response = self.engine.request(
                "GET", f"/api/v1/namespaces/{self.ns}/pods/{self.pod}/log",
                params={"container": self.container, "follow": "true"}, stream=True,
                timeout=(10, self.timeout), what=f"log of pod {self.pod}")
            with self.response:
                for raw in self.response.iter_lines():
                    self.write(raw.decode(errors="replace"))
                    self.lines += 1
        except Exception as exc:  # noqa: BLE001 - a log is a nicety; close() may break it
            if not self.stop.is_set():
                self.write(f"(the pod's log is not available: {exc})")

    def close(self) -> None:
        abort(self.response)
