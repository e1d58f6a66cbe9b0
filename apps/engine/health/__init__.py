"""Health of live Kubernetes objects, as Argo CD reports it.

    assess(obj) -> HealthResult      obj is the object as the API returns it (a dict, camelCase)
    worst(statuses) -> Health        the application's health: the worst of its resources'

Statuses, from best to worst (Argo CD's order for an application's health):

    Healthy < Suspended < Progressing < Missing < Degraded < Unknown

The per-kind rules and their messages are Argo CD's (gitops-engine `pkg/health`, and the Lua
checks Argo CD bundles for CronJob, CustomResourceDefinition and PodDisruptionBudget),
re-expressed here; the README lists where we deliberately differ. Rules read only the object
itself (a Deployment's health comes from its status, not from its Pods):

    workloads.py   Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob
    pod.py         Pod
    services.py    Service, Ingress, PVC, HPA, APIService, CRD, PodDisruptionBudget, Workflow
    generic.py     every other kind: Healthy unless a standard status says otherwise

An object with metadata.deletionTimestamp is Progressing ("Pending deletion"), unless it holds
Argo CD's hook finalizer (then its own rule decides, so a finished hook is not left waiting).
"""
from __future__ import annotations

from typing import Callable

from . import pod as _pod
from . import services as _services
from . import workloads as _workloads
from .generic import generic as _generic
from .status import (DEGRADED, HEALTHY, MISSING, PROGRESSING, SUSPENDED, UNKNOWN, Health,
                     HealthResult, meta, worst)

__all__ = ["Health", "HealthResult", "assess", "worst",
           "HEALTHY", "SUSPENDED", "PROGRESSING", "MISSING", "DEGRADED", "UNKNOWN"]

HOOK_FINALIZER = "argocd.argoproj.io/hook-finalizer"

_Rule = Callable[[dict], HealthResult]
# By (API group, kind); the version does not matter (the API server serves one shape per kind
# and version that the rules read alike).
_RULES: dict[tuple[str, str], _Rule] = {
    ("apps", "Deployment"): _workloads.deployment,
    ("apps", "StatefulSet"): _workloads.statefulset,
    ("apps", "DaemonSet"): _workloads.daemonset,
    ("apps", "ReplicaSet"): _workloads.replicaset,
    ("batch", "Job"): _workloads.job,
    ("batch", "CronJob"): _workloads.cronjob,
    ("", "Pod"): _pod.pod,
    ("", "Service"): _services.service,
    ("", "PersistentVolumeClaim"): _services.pvc,
    ("networking.k8s.io", "Ingress"): _services.ingress,
    ("extensions", "Ingress"): _services.ingress,
    ("autoscaling", "HorizontalPodAutoscaler"): _services.hpa,
    ("apiregistration.k8s.io", "APIService"): _services.apiservice,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _services.crd,
    ("policy", "PodDisruptionBudget"): _services.pdb,
    ("argoproj.io", "Workflow"): _services.workflow,
}


def assess(obj: dict | None) -> HealthResult:
    """The health of one live object (as the API returns it), or Missing for None."""
    if obj is None:
        return HealthResult(MISSING, "resource does not exist")
    metadata = meta(obj)
    if metadata.get("deletionTimestamp") and HOOK_FINALIZER not in (metadata.get("finalizers")
                                                                    or []):
        return HealthResult(PROGRESSING, "Pending deletion")
    group = (obj.get("apiVersion") or "").rpartition("/")[0]
    rule = _RULES.get((group, obj.get("kind") or ""), _generic)
    try:
        return rule(obj)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:  # a malformed object
        return HealthResult(UNKNOWN, f"cannot assess health: {exc}")
