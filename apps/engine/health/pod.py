"""Pods, as Argo CD judges them.

A Pod with restartPolicy OnFailure or Never runs to completion (typically a hook): it is
Progressing while it runs, whatever its containers went through, and only its end (Succeeded or
Failed) decides. Waiting errors (CrashLoopBackOff, ImagePullBackOff, Err*, *Error, *BackOff) make
only long-running pods Degraded, so a hook whose image is late is not failed early.
The `argocd.argoproj.io/ignore-restart-policy: "true"` annotation makes a non-hook Pod be judged
as long-running whatever its restartPolicy.
"""
from __future__ import annotations

from ..resources import ARGO, hook_types
from .status import (DEGRADED, HEALTHY, PROGRESSING, UNKNOWN, HealthResult, condition, meta,
                     num, spec, status)

IGNORE_RESTART_POLICY = ARGO + "ignore-restart-policy"


def _stuck(reason: str) -> bool:
    """A container waiting reason that means the kubelet is stuck, not merely busy."""
    return reason.startswith("Err") or reason.endswith(("Error", "BackOff"))


def _fail_message(container: dict) -> str:
    terminated = (container.get("state") or {}).get("terminated")
    if not terminated:
        return ""
    if terminated.get("message"):
        return terminated["message"]
    if terminated.get("reason") == "OOMKilled":
        return "OOMKilled"
    if num(terminated.get("exitCode")) != 0:
        return f'container "{container.get("name")}" failed with exit code {terminated["exitCode"]}'
    return ""


def pod(obj: dict) -> HealthResult:
    st = status(obj)
    message = st.get("message") or ""
    containers = st.get("containerStatuses") or []
    # The API server defaults restartPolicy to Always; an object without it is read that way.
    policy = spec(obj).get("restartPolicy") or "Always"
    is_hook = any(t != "Skip" for t in hook_types(obj))
    long_running = policy == "Always" or (
        (meta(obj).get("annotations") or {}).get(IGNORE_RESTART_POLICY) == "true" and not is_hook)

    if long_running:
        stuck = [c["state"]["waiting"] for c in containers
                 if ((c.get("state") or {}).get("waiting") or {}).get("reason")
                 and _stuck(c["state"]["waiting"]["reason"])]
        if stuck:
            # Argo CD shows the kubelet's messages; the reason stands in where there is none.
            return HealthResult(DEGRADED, ", ".join(w.get("message") or w["reason"]
                                                    for w in stuck))

    phase = st.get("phase")
    if phase == "Pending":
        return HealthResult(PROGRESSING, message)
    if phase == "Succeeded":
        return HealthResult(HEALTHY, message)
    if phase == "Failed":
        if message:
            return HealthResult(DEGRADED, message)
        for c in [*(st.get("initContainerStatuses") or []), *containers]:
            if why := _fail_message(c):
                return HealthResult(DEGRADED, why)
        return HealthResult(DEGRADED, "")
    if phase == "Running":
        if long_running:
            ready = condition(st.get("conditions"), "Ready")
            if ready and ready.get("status") == "True":
                return HealthResult(HEALTHY, message)
            # Not ready after a container already terminated once: it is failing, not starting.
            if any(((c.get("lastState") or {}).get("terminated")) for c in containers):
                return HealthResult(DEGRADED, message)
            return HealthResult(PROGRESSING, message)
        if policy in ("OnFailure", "Never"):
            return HealthResult(PROGRESSING, message)
    return HealthResult(UNKNOWN, message)
