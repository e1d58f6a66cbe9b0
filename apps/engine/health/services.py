"""Service, Ingress, PersistentVolumeClaim, HorizontalPodAutoscaler and APIService (gitops-engine's
built-in checks), CustomResourceDefinition and PodDisruptionBudget (Argo CD's bundled Lua checks)
and Argo Workflows' Workflow."""
from __future__ import annotations

import json

from .status import (DEGRADED, HEALTHY, PROGRESSING, UNKNOWN, HealthResult, condition, meta,
                     spec, status)


def _has_load_balancer(obj: dict) -> bool:
    """Any entry in status.loadBalancer.ingress counts, even one with neither ip nor hostname
    (some controllers publish only ports or an ipMode at first): Argo CD's rule."""
    return bool((status(obj).get("loadBalancer") or {}).get("ingress"))


def service(obj: dict) -> HealthResult:
    if spec(obj).get("type") == "LoadBalancer" and not _has_load_balancer(obj):
        return HealthResult(PROGRESSING, "Waiting for a load balancer to be assigned")
    return HealthResult(HEALTHY)


def ingress(obj: dict) -> HealthResult:
    if not _has_load_balancer(obj):
        return HealthResult(PROGRESSING, "Waiting for an ingress controller to assign an address")
    return HealthResult(HEALTHY)


def pvc(obj: dict) -> HealthResult:
    phase = status(obj).get("phase")
    if phase == "Bound":
        return HealthResult(HEALTHY)
    if phase == "Pending":
        return HealthResult(PROGRESSING, "Waiting for the claim to be bound")
    if phase == "Lost":
        return HealthResult(DEGRADED, "The bound volume is lost")
    return HealthResult(UNKNOWN, f"Unknown claim phase: {phase}" if phase else "No claim phase")


# --- HorizontalPodAutoscaler ------------------------------------------------------------------
HPA_CONDITIONS_ANNOTATION = "autoscaling.alpha.kubernetes.io/conditions"
_WAITING_TO_AUTOSCALE = HealthResult(PROGRESSING, "Waiting to Autoscale")
# (condition type, reason) pairs that mean the autoscaler cannot do its job.
_HPA_FAILURES = {
    ("AbleToScale", "FailedGetScale"), ("AbleToScale", "FailedUpdateScale"),
    ("ScalingActive", "FailedGetResourceMetric"), ("ScalingActive", "FailedGetObjectMetric"),
    ("ScalingActive", "FailedGetPodsMetric"), ("ScalingActive", "FailedGetExternalMetric"),
    ("ScalingActive", "FailedComputeMetricsReplicas"), ("ScalingActive", "InvalidSelector"),
}


def hpa(obj: dict) -> HealthResult:
    """autoscaling/v1 keeps the conditions as JSON in an annotation, v2 in status.conditions.
    Any failure condition is Degraded; otherwise AbleToScale=True or ScalingLimited=True is
    Healthy (whatever ScalingActive says: ScalingDisabled is a target scaled to zero on purpose);
    anything else is still Progressing ("Waiting to Autoscale")."""
    if obj.get("apiVersion") == "autoscaling/v1":
        raw = (meta(obj).get("annotations") or {}).get(HPA_CONDITIONS_ANNOTATION)
        if raw is None:
            return _WAITING_TO_AUTOSCALE
        try:
            conditions = json.loads(raw)
        except json.JSONDecodeError as exc:
            return HealthResult(UNKNOWN, f"failed to convert conditions annotation to typed: {exc}")
        if not isinstance(conditions, list):
            return HealthResult(UNKNOWN, "failed to convert conditions annotation to typed: "
                                         "not a list")
    else:
        conditions = status(obj).get("conditions") or []
    for c in conditions:
        if (c.get("type"), c.get("reason")) in _HPA_FAILURES:
            return HealthResult(DEGRADED, c.get("message") or "")
    for c in conditions:
        if c.get("type") in ("AbleToScale", "ScalingLimited") and c.get("status") == "True":
            return HealthResult(HEALTHY, c.get("message") or "")
    return _WAITING_TO_AUTOSCALE


def apiservice(obj: dict) -> HealthResult:
    """Available=True is Healthy; anything else (its backend not there yet) Progressing."""
    available = condition(status(obj).get("conditions"), "Available")
    if available is None:
        return HealthResult(PROGRESSING, "Waiting to be processed")
    why = f"{available.get('reason') or ''}: {available.get('message') or ''}"
    return HealthResult(HEALTHY if available.get("status") == "True" else PROGRESSING, why)


# --- Argo CD's bundled Lua checks for common built-in kinds --------------------------------------
def crd(obj: dict) -> HealthResult:
    conditions = status(obj).get("conditions") or []
    if not conditions:
        return HealthResult(PROGRESSING, "Status conditions not found")
    established = False
    for c in conditions:
        kind, value, text = c.get("type"), c.get("status"), c.get("message") or ""
        if kind == "Terminating" and value == "True":
            return HealthResult(PROGRESSING, "CRD is terminating: " + text)
        if kind == "NamesAccepted" and value == "False":
            return HealthResult(DEGRADED, "CRD names have not been accepted: " + text)
        if kind == "NonStructuralSchema" and value == "True":
            return HealthResult(DEGRADED, "Schema violations found: " + text)
        if kind == "Established":
            if value == "True":
                established = True
            elif c.get("reason") == "Installing":
                return HealthResult(PROGRESSING, "CRD is being installed")
    if not established:
        return HealthResult(DEGRADED, "CRD is not established")
    return HealthResult(HEALTHY, "CRD is healthy")


def pdb(obj: dict) -> HealthResult:
    """Any False condition is Degraded, except InsufficientPods (a budget over pods that are not
    there yet, or scaled to zero, is a normal state)."""
    result = HealthResult(PROGRESSING, "Waiting for status")
    for c in status(obj).get("conditions") or []:
        text = f"PodDisruptionBudget has {c.get('reason') or ''}"
        if c.get("status") == "False" and c.get("reason") != "InsufficientPods":
            return HealthResult(DEGRADED, text)
        result = HealthResult(HEALTHY, text)
    return result


_WORKFLOW_PHASES = {"": PROGRESSING, "Pending": PROGRESSING, "Running": PROGRESSING,
                    "Succeeded": HEALTHY, "Failed": DEGRADED, "Error": DEGRADED}


def workflow(obj: dict) -> HealthResult:
    st = status(obj)
    phase = st.get("phase") or ""
    return HealthResult(_WORKFLOW_PHASES.get(phase, UNKNOWN), st.get("message") or "")
