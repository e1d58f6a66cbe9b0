"""Health of live Kubernetes objects: one rule per well-known kind, a generic fallback.

    assess(obj) -> HealthResult      obj is the object as the API returns it (a dict, camelCase)
    worst(statuses) -> Health        the application's health: the worst of its resources'

Statuses, from best to worst (the order Argo CD documents for an application's health):

    Healthy < Suspended < Progressing < Missing < Degraded < Unknown

So an application with one Degraded and one Missing resource is Degraded, and a paused
Deployment next to a rolling one makes the application Progressing. Unknown ranks worst because
it means we could not tell at all.

Rules read only the object itself (a Deployment's health comes from its status, not its Pods):

* any object with metadata.deletionTimestamp: Progressing, "being deleted"
* Deployment, StatefulSet, DaemonSet, ReplicaSet: controller caught up with the spec
  (status.observedGeneration), then updated / ready / available replica counts; a paused
  Deployment is Suspended, one past its progress deadline Degraded
* Pod: phase, container waiting reasons (CrashLoopBackOff, ImagePullBackOff... are Degraded),
  readiness for long-running pods, Succeeded Healthy and Failed Degraded
* Job (Complete / Failed conditions, spec.suspend), CronJob (spec.suspend, running jobs, and
  whether the last scheduled run succeeded)
* Service of type LoadBalancer and Ingress: Progressing until an address is published
* PersistentVolumeClaim: Bound / Pending / Lost; Namespace: Active / Terminating
* HorizontalPodAutoscaler (v2 conditions, or v1's conditions annotation); APIService (Available)

Any other kind is Healthy unless it carries a standard status: a status.observedGeneration
behind metadata.generation is Progressing (no observedGeneration at all is not judged); a Ready
or Available condition that is False is Progressing when its reason reads like work under way
and Degraded otherwise (Unknown is Progressing); kstatus' Stalled=True is Degraded and
Reconciling=True is Progressing.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Callable, Iterable

__all__ = ["Health", "HealthResult", "assess", "worst",
           "HEALTHY", "SUSPENDED", "PROGRESSING", "MISSING", "DEGRADED", "UNKNOWN"]


class Health(StrEnum):
    """A health status. Members are plain strings: Health.HEALTHY == "Healthy"."""

    HEALTHY = "Healthy"
    SUSPENDED = "Suspended"
    PROGRESSING = "Progressing"
    MISSING = "Missing"
    DEGRADED = "Degraded"
    UNKNOWN = "Unknown"


HEALTHY, SUSPENDED, PROGRESSING = Health.HEALTHY, Health.SUSPENDED, Health.PROGRESSING
MISSING, DEGRADED, UNKNOWN = Health.MISSING, Health.DEGRADED, Health.UNKNOWN

# Best first; worst() picks the highest index.
_ORDER = (HEALTHY, SUSPENDED, PROGRESSING, MISSING, DEGRADED, UNKNOWN)
_RANK = {status: i for i, status in enumerate(_ORDER)}


@dataclass(frozen=True)
class HealthResult:
    status: Health
    message: str = ""

    def __str__(self) -> str:
        return f"{self.status}: {self.message}" if self.message else str(self.status)


def worst(statuses: Iterable[str | Health | HealthResult]) -> Health:
    """The worst of `statuses` in the order Healthy < Suspended < Progressing < Missing <
    Degraded < Unknown (Argo CD's documented order). Accepts strings, Health members or
    HealthResults; an unrecognised string counts as Unknown. No statuses at all is Healthy."""
    result = HEALTHY
    for s in statuses:
        if isinstance(s, HealthResult):
            s = s.status
        try:
            status = Health(s)
        except ValueError:
            status = UNKNOWN
        if _RANK[status] > _RANK[result]:
            result = status
    return result


def assess(obj: dict | None) -> HealthResult:
    """The health of one live object (as the API returns it), or Missing for None."""
    if obj is None:
        return HealthResult(MISSING, "resource does not exist")
    meta = obj.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return HealthResult(PROGRESSING, "being deleted")
    group = (obj.get("apiVersion") or "").rpartition("/")[0]
    rule = _RULES.get((group, obj.get("kind") or ""), _generic)
    try:
        return rule(obj)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:  # a malformed object
        return HealthResult(UNKNOWN, f"cannot assess health: {exc}")


# --- helpers ----------------------------------------------------------------------------------
def _spec(obj: dict) -> dict:
    return obj.get("spec") or {}


def _status(obj: dict) -> dict:
    return obj.get("status") or {}


def _int(value: Any, default: int = 0) -> int:
    return default if value is None else int(value)


def _conditions(obj: dict) -> dict[str, dict]:
    """status.conditions by type (the last one wins if a type repeats)."""
    return {c.get("type"): c for c in (_status(obj).get("conditions") or []) if isinstance(c, dict)}


def _is(condition: dict | None, value: str) -> bool:
    return condition is not None and condition.get("status") == value


def _why(condition: dict, fallback: str = "") -> str:
    """The condition's message, else its reason, else `fallback`."""
    return condition.get("message") or condition.get("reason") or fallback


def _generation_behind(obj: dict, reported_only: bool = False) -> HealthResult | None:
    """Progressing while the controller has not yet observed the latest spec. With
    `reported_only`, an object whose status has no observedGeneration is not judged (many
    controllers never report it); built-in workload controllers always do."""
    generation = (obj.get("metadata") or {}).get("generation")
    if generation is None or (reported_only and "observedGeneration" not in _status(obj)):
        return None
    observed = _int(_status(obj).get("observedGeneration"))
    if observed < int(generation):
        return HealthResult(PROGRESSING, "waiting for the controller to observe the new spec")
    return None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# --- workloads --------------------------------------------------------------------------------
def _deployment(obj: dict) -> HealthResult:
    spec, status = _spec(obj), _status(obj)
    if spec.get("paused"):
        return HealthResult(SUSPENDED, "rollout is paused")
    if behind := _generation_behind(obj):
        return behind
    progressing = _conditions(obj).get("Progressing")
    if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
        return HealthResult(DEGRADED, _why(progressing, "progress deadline exceeded"))
    desired = _int(spec.get("replicas"), 1)
    updated = _int(status.get("updatedReplicas"))
    current = _int(status.get("replicas"))
    available = _int(status.get("availableReplicas"))
    if updated < desired:
        return HealthResult(PROGRESSING, f"{updated} of {desired} replicas updated")
    if current > updated:
        return HealthResult(PROGRESSING,
                            f"{_plural(current - updated, 'old replica')} pending termination")
    if available < updated:
        return HealthResult(PROGRESSING, f"{available} of {updated} updated replicas available")
    return HealthResult(HEALTHY, f"{_plural(available, 'replica')} available")


def _statefulset(obj: dict) -> HealthResult:
    spec, status = _spec(obj), _status(obj)
    if behind := _generation_behind(obj):
        return behind
    desired = _int(spec.get("replicas"), 1)
    ready = _int(status.get("readyReplicas"))
    if ready < desired:
        return HealthResult(PROGRESSING, f"{ready} of {desired} replicas ready")
    if spec.get("minReadySeconds") and "availableReplicas" in status:
        available = _int(status.get("availableReplicas"))
        if available < desired:
            return HealthResult(PROGRESSING, f"{available} of {desired} replicas available")
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type") == "OnDelete":
        # Pods are only replaced when someone deletes them: nothing to wait for.
        return HealthResult(HEALTHY, "OnDelete strategy: pods update when deleted")
    partition = _int((strategy.get("rollingUpdate") or {}).get("partition"))
    if partition > 0:
        target = max(desired - partition, 0)
        updated = _int(status.get("updatedReplicas"))
        if updated < target:
            return HealthResult(PROGRESSING, f"{updated} of {target} partitioned replicas updated")
        return HealthResult(HEALTHY, f"partitioned rollout complete: {updated} updated")
    if status.get("updateRevision") != status.get("currentRevision"):
        updated = _int(status.get("updatedReplicas"))
        return HealthResult(PROGRESSING, f"{updated} of {desired} replicas updated")
    return HealthResult(HEALTHY, f"{_plural(ready, 'replica')} ready")


def _daemonset(obj: dict) -> HealthResult:
    spec, status = _spec(obj), _status(obj)
    if behind := _generation_behind(obj):
        return behind
    desired = _int(status.get("desiredNumberScheduled"))
    on_delete = (spec.get("updateStrategy") or {}).get("type") == "OnDelete"
    updated = _int(status.get("updatedNumberScheduled"))
    if not on_delete and updated < desired:
        return HealthResult(PROGRESSING, f"{updated} of {desired} pods updated")
    available = _int(status.get("numberAvailable"))
    if available < desired:
        return HealthResult(PROGRESSING, f"{available} of {desired} pods available")
    if on_delete:
        return HealthResult(HEALTHY, f"{available} of {desired} pods available (OnDelete strategy)")
    return HealthResult(HEALTHY, f"{available} of {desired} pods available")


def _replicaset(obj: dict) -> HealthResult:
    if behind := _generation_behind(obj):
        return behind
    failure = _conditions(obj).get("ReplicaFailure")
    if _is(failure, "True"):
        return HealthResult(DEGRADED, _why(failure, "replica failure"))
    desired = _int(_spec(obj).get("replicas"), 1)
    available = _int(_status(obj).get("availableReplicas"))
    if available < desired:
        return HealthResult(PROGRESSING, f"{available} of {desired} replicas available")
    return HealthResult(HEALTHY, f"{_plural(available, 'replica')} available")


# Container waiting reasons that mean the kubelet is stuck, not merely busy.
_BAD_WAITING = {
    "CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "ErrImageNeverPull",
    "InvalidImageName", "CreateContainerConfigError", "CreateContainerError",
    "RunContainerError", "PreStartHookError", "PostStartHookError", "ImageInspectError",
    "RegistryUnavailable", "SignatureValidationFailed",
}


def _bad_waiting(reason: str) -> bool:
    return reason in _BAD_WAITING or reason.startswith("Err") or reason.endswith(
        ("BackOff", "Error"))


def _pod(obj: dict) -> HealthResult:
    status = _status(obj)
    phase = status.get("phase") or "Pending"
    containers = [*(status.get("initContainerStatuses") or []),
                  *(status.get("containerStatuses") or [])]
    if phase == "Succeeded":
        return HealthResult(HEALTHY, status.get("message") or "completed")
    if phase == "Failed":
        return HealthResult(DEGRADED, status.get("message") or _failed_containers(containers)
                            or status.get("reason") or "pod failed")
    for c in containers:
        waiting = (c.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason") or ""
        if reason and _bad_waiting(reason):
            detail = f": {waiting['message']}" if waiting.get("message") else ""
            return HealthResult(DEGRADED, f"container {c.get('name')}: {reason}{detail}")
    if phase == "Pending":
        scheduled = _conditions(obj).get("PodScheduled")
        if _is(scheduled, "False"):
            return HealthResult(PROGRESSING, f"not scheduled: {_why(scheduled, 'pending')}")
        for c in containers:
            reason = ((c.get("state") or {}).get("waiting") or {}).get("reason")
            if reason:
                return HealthResult(PROGRESSING, f"container {c.get('name')}: {reason}")
        return HealthResult(PROGRESSING, "pending")
    if phase == "Running":
        if _spec(obj).get("restartPolicy", "Always") != "Always":
            return HealthResult(PROGRESSING, "running to completion")
        ready = _conditions(obj).get("Ready")
        if _is(ready, "True"):
            return HealthResult(HEALTHY, "running and ready")
        return HealthResult(PROGRESSING, f"running, not ready{_suffix(ready)}")
    return HealthResult(UNKNOWN, status.get("message") or f"pod phase {phase}")


def _suffix(condition: dict | None) -> str:
    why = _why(condition) if condition else ""
    return f": {why}" if why else ""


def _failed_containers(containers: list[dict]) -> str:
    for c in containers:
        term = (c.get("state") or {}).get("terminated") or {}
        if term and _int(term.get("exitCode")) != 0:
            reason = term.get("reason") or "Error"
            return f"container {c.get('name')}: {reason} (exit code {term.get('exitCode')})"
    return ""


def _job(obj: dict) -> HealthResult:
    conditions = _conditions(obj)
    status = _status(obj)
    if _is(conditions.get("Complete"), "True"):
        return HealthResult(HEALTHY, _why(conditions["Complete"], "job completed"))
    for kind in ("Failed", "FailureTarget"):
        if _is(conditions.get(kind), "True"):
            return HealthResult(DEGRADED, _why(conditions[kind], "job failed"))
    if _spec(obj).get("suspend"):
        return HealthResult(SUSPENDED, "job is suspended")
    active, succeeded = _int(status.get("active")), _int(status.get("succeeded"))
    completions = _spec(obj).get("completions")
    of = f" of {completions}" if completions is not None else ""
    return HealthResult(PROGRESSING, f"{active} active, {succeeded}{of} succeeded")


def _cronjob(obj: dict) -> HealthResult:
    status = _status(obj)
    if _spec(obj).get("suspend"):
        return HealthResult(SUSPENDED, "cron job is suspended")
    if active := status.get("active"):
        return HealthResult(PROGRESSING, f"{_plural(len(active), 'job')} running")
    last_schedule, last_success = status.get("lastScheduleTime"), status.get("lastSuccessfulTime")
    # A run that is no longer active and did not succeed after it was scheduled has failed (or
    # its Job was deleted before finishing).
    if last_schedule and (not last_success or _time(last_success) < _time(last_schedule)):
        return HealthResult(DEGRADED, f"last job scheduled at {last_schedule} did not succeed")
    return HealthResult(HEALTHY, f"last run succeeded at {last_success}" if last_success else "")


def _time(value: str | datetime) -> datetime:
    """An RFC 3339 timestamp from the API (or a datetime a client already parsed)."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


# --- networking, storage, cluster -------------------------------------------------------------
def _has_address(obj: dict) -> bool:
    ingress = (_status(obj).get("loadBalancer") or {}).get("ingress") or []
    return any(i.get("ip") or i.get("hostname") for i in ingress)


def _service(obj: dict) -> HealthResult:
    if _spec(obj).get("type") == "LoadBalancer" and not _has_address(obj):
        return HealthResult(PROGRESSING, "waiting for a load balancer address")
    return HealthResult(HEALTHY)


def _ingress(obj: dict) -> HealthResult:
    if not _has_address(obj):
        return HealthResult(PROGRESSING, "waiting for an address")
    return HealthResult(HEALTHY)


def _pvc(obj: dict) -> HealthResult:
    phase = _status(obj).get("phase")
    if phase == "Bound":
        return HealthResult(HEALTHY, "bound")
    if phase == "Lost":
        return HealthResult(DEGRADED, "the bound volume is lost")
    if phase in (None, "Pending"):
        return HealthResult(PROGRESSING, "waiting for a volume to be bound")
    return HealthResult(UNKNOWN, f"claim phase {phase}")


def _namespace(obj: dict) -> HealthResult:
    phase = _status(obj).get("phase")
    if phase == "Terminating":
        return HealthResult(PROGRESSING, "being deleted")
    if phase in (None, "Active"):
        return HealthResult(HEALTHY)
    return HealthResult(UNKNOWN, f"namespace phase {phase}")


_V1_HPA_CONDITIONS = "autoscaling.alpha.kubernetes.io/conditions"


def _hpa(obj: dict) -> HealthResult:
    conditions = _conditions(obj)
    if not conditions:  # autoscaling/v1 keeps them in an annotation
        raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(_V1_HPA_CONDITIONS)
        if raw:
            conditions = {c.get("type"): c for c in json.loads(raw) if isinstance(c, dict)}
    if behind := _generation_behind(obj, reported_only=True):
        return behind
    able = conditions.get("AbleToScale")
    if _is(able, "False"):
        return HealthResult(DEGRADED, _why(able, "unable to scale"))
    active = conditions.get("ScalingActive")
    if _is(active, "False"):
        if active.get("reason") == "ScalingDisabled":  # the target is scaled to zero on purpose
            return HealthResult(SUSPENDED, _why(active, "scaling disabled"))
        return HealthResult(DEGRADED, _why(active, "scaling inactive"))
    if not conditions:
        return HealthResult(PROGRESSING, "waiting for the autoscaler to act")
    limited = conditions.get("ScalingLimited")
    return HealthResult(HEALTHY, _why(limited) if _is(limited, "True") else "")


def _apiservice(obj: dict) -> HealthResult:
    available = _conditions(obj).get("Available")
    if available is None:
        return HealthResult(PROGRESSING, "waiting for availability to be checked")
    if _is(available, "True"):
        return HealthResult(HEALTHY)
    return HealthResult(DEGRADED, _why(available, "not available"))


# --- anything else ----------------------------------------------------------------------------
# Words in a False Ready/Available condition's reason that mean "working on it", not "broken".
_BUSY_WORDS = ("progress", "reconcil", "pending", "wait", "creat", "provision", "initializ",
               "updat", "install", "upgrad", "deploy", "start", "scal", "rollout", "issu")


def _generic(obj: dict) -> HealthResult:
    if behind := _generation_behind(obj, reported_only=True):
        return behind
    conditions = _conditions(obj)
    if _is(stalled := conditions.get("Stalled"), "True"):
        return HealthResult(DEGRADED, _why(stalled, "stalled"))
    if _is(reconciling := conditions.get("Reconciling"), "True"):
        return HealthResult(PROGRESSING, _why(reconciling, "reconciling"))
    for kind in ("Ready", "Available"):
        condition = conditions.get(kind)
        if _is(condition, "Unknown"):
            return HealthResult(PROGRESSING, _why(condition, f"{kind} unknown"))
        if _is(condition, "False"):
            reason = (condition.get("reason") or "").lower()
            busy = any(word in reason for word in _BUSY_WORDS)
            return HealthResult(PROGRESSING if busy else DEGRADED,
                                _why(condition, f"not {kind.lower()}"))
    return HealthResult(HEALTHY)


_Rule = Callable[[dict], HealthResult]
_RULES: dict[tuple[str, str], _Rule] = {
    ("apps", "Deployment"): _deployment,
    ("extensions", "Deployment"): _deployment,
    ("apps", "StatefulSet"): _statefulset,
    ("apps", "DaemonSet"): _daemonset,
    ("extensions", "DaemonSet"): _daemonset,
    ("apps", "ReplicaSet"): _replicaset,
    ("extensions", "ReplicaSet"): _replicaset,
    ("", "Pod"): _pod,
    ("batch", "Job"): _job,
    ("batch", "CronJob"): _cronjob,
    ("", "Service"): _service,
    ("networking.k8s.io", "Ingress"): _ingress,
    ("extensions", "Ingress"): _ingress,
    ("", "PersistentVolumeClaim"): _pvc,
    ("", "Namespace"): _namespace,
    ("autoscaling", "HorizontalPodAutoscaler"): _hpa,
    ("apiregistration.k8s.io", "APIService"): _apiservice,
}
