"""Kinds Argo CD has no health check for (ConfigMaps, Secrets, RBAC, most custom resources...).

Argo CD leaves those without a health and ignores them in the application's health. Here they
are Healthy unless they carry a standard status that says otherwise, so an operator's resource
that reports failure in the usual way is not shown as fine:

* status.observedGeneration behind metadata.generation: Progressing (an object whose status has
  no observedGeneration at all is not judged; many controllers never report it);
* kstatus' Stalled=True: Degraded; Reconciling=True: Progressing;
* a Ready or Available condition that is Unknown: Progressing; False: Progressing when its
  reason reads like work under way, Degraded otherwise.
"""
from __future__ import annotations

from .status import DEGRADED, HEALTHY, PROGRESSING, HealthResult, condition, generation, status

# Words in a False Ready/Available condition's reason that mean "working on it", not "broken".
_BUSY_WORDS = ("progress", "reconcil", "pending", "wait", "creat", "provision", "initializ",
               "updat", "install", "upgrad", "deploy", "start", "scal", "rollout", "issu")


def _why(c: dict, fallback: str) -> str:
    return c.get("message") or c.get("reason") or fallback


def generic(obj: dict) -> HealthResult:
    st = status(obj)
    if "observedGeneration" in st and int(st["observedGeneration"] or 0) < generation(obj):
        return HealthResult(PROGRESSING, "Waiting for the controller to observe the new spec")
    conditions = st.get("conditions") or []
    stalled, reconciling = condition(conditions, "Stalled"), condition(conditions, "Reconciling")
    if stalled and stalled.get("status") == "True":
        return HealthResult(DEGRADED, _why(stalled, "stalled"))
    if reconciling and reconciling.get("status") == "True":
        return HealthResult(PROGRESSING, _why(reconciling, "reconciling"))
    for kind in ("Ready", "Available"):
        c = condition(conditions, kind)
        if c is None:
            continue
        if c.get("status") == "Unknown":
            return HealthResult(PROGRESSING, _why(c, f"{kind} unknown"))
        if c.get("status") == "False":
            reason = (c.get("reason") or "").lower()
            busy = any(word in reason for word in _BUSY_WORDS)
            return HealthResult(PROGRESSING if busy else DEGRADED, _why(c, f"not {kind.lower()}"))
    return HealthResult(HEALTHY)
