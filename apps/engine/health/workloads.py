"""Deployment, StatefulSet, DaemonSet, ReplicaSet, Job and CronJob: the rules and messages of
Argo CD (gitops-engine's built-in checks; its bundled Lua check for CronJob)."""
from __future__ import annotations

from .status import (DEGRADED, HEALTHY, PROGRESSING, SUSPENDED, HealthResult, condition,
                     generation, meta, num, observed, spec, status)

_WAITING = "Waiting for rollout to finish: "


def deployment(obj: dict) -> HealthResult:
    st = status(obj)
    if spec(obj).get("paused"):
        return HealthResult(SUSPENDED, "Deployment is paused")
    if generation(obj) > observed(obj):
        return HealthResult(PROGRESSING, _WAITING + "observed deployment generation less than "
                                                   "desired generation")
    progressing = condition(st.get("conditions"), "Progressing")
    if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
        return HealthResult(DEGRADED,
                            f'Deployment "{meta(obj).get("name")}" exceeded its progress deadline')
    replicas = spec(obj).get("replicas")
    updated, current = num(st.get("updatedReplicas")), num(st.get("replicas"))
    available = num(st.get("availableReplicas"))
    if replicas is not None and updated < int(replicas):
        return HealthResult(PROGRESSING, _WAITING + f"{updated} out of {replicas} new replicas "
                                                    "have been updated...")
    if current > updated:
        return HealthResult(PROGRESSING, _WAITING + f"{current - updated} old replicas are "
                                                    "pending termination...")
    if available < updated:
        return HealthResult(PROGRESSING, _WAITING + f"{available} of {updated} updated replicas "
                                                    "are available...")
    return HealthResult(HEALTHY)


def statefulset(obj: dict) -> HealthResult:
    sp, st = spec(obj), status(obj)
    # Observed generation 0 means no controller has looked at it yet.
    if observed(obj) == 0 or generation(obj) > observed(obj):
        return HealthResult(PROGRESSING, "Waiting for statefulset spec update to be observed...")
    replicas, ready = sp.get("replicas"), num(st.get("readyReplicas"))
    updated = num(st.get("updatedReplicas"))
    if replicas is not None and ready < int(replicas):
        return HealthResult(PROGRESSING, f"Waiting for {int(replicas) - ready} pods to be ready...")
    strategy = sp.get("updateStrategy") or {}
    rolling = strategy.get("rollingUpdate")
    # The API server always fills in rollingUpdate for the RollingUpdate strategy, so this is the
    # branch a live StatefulSet takes: done once the pods above the partition are updated.
    if strategy.get("type") == "RollingUpdate" and rolling is not None:
        partition = rolling.get("partition")
        if replicas is not None and partition is not None:
            target = int(replicas) - int(partition)
            if updated < target:
                return HealthResult(PROGRESSING, "Waiting for partitioned roll out to finish: "
                                    f"{updated} out of {target} new pods have been updated...")
        return HealthResult(HEALTHY, f"partitioned roll out complete: {updated} new pods have "
                                     "been updated...")
    if strategy.get("type") == "OnDelete":
        return HealthResult(HEALTHY, f"statefulset has {ready} ready pods")
    revision = st.get("updateRevision") or ""
    if revision != (st.get("currentRevision") or ""):
        return HealthResult(PROGRESSING, "waiting for statefulset rolling update to complete "
                                         f"{updated} pods at revision {revision}...")
    return HealthResult(HEALTHY, "statefulset rolling update complete "
                                 f"{num(st.get('currentReplicas'))} pods at revision {revision}...")


def daemonset(obj: dict) -> HealthResult:
    st, name = status(obj), meta(obj).get("name")
    if generation(obj) > observed(obj):
        return HealthResult(PROGRESSING, _WAITING + "observed daemon set generation less than "
                                                   "desired generation")
    desired, updated = num(st.get("desiredNumberScheduled")), num(st.get("updatedNumberScheduled"))
    available = num(st.get("numberAvailable"))
    if (spec(obj).get("updateStrategy") or {}).get("type") == "OnDelete":
        return HealthResult(HEALTHY, f"daemon set {updated} out of {desired} new pods have been "
                                     "updated")
    waiting = f'Waiting for daemon set "{name}" rollout to finish: '
    if updated < desired:
        return HealthResult(PROGRESSING, waiting + f"{updated} out of {desired} new pods have been "
                                                   "updated...")
    if available < desired:
        return HealthResult(PROGRESSING, waiting + f"{available} of {desired} updated pods are "
                                                   "available...")
    return HealthResult(HEALTHY)


def replicaset(obj: dict) -> HealthResult:
    st = status(obj)
    if generation(obj) > observed(obj):
        return HealthResult(PROGRESSING, _WAITING + "observed replica set generation less than "
                                                   "desired generation")
    failure = condition(st.get("conditions"), "ReplicaFailure")
    if failure and failure.get("status") == "True":
        return HealthResult(DEGRADED, failure.get("message") or "")
    replicas, available = spec(obj).get("replicas"), num(st.get("availableReplicas"))
    if replicas is not None and available < int(replicas):
        return HealthResult(PROGRESSING, _WAITING + f"{available} out of {replicas} new replicas "
                                                    "are available...")
    return HealthResult(HEALTHY)


def job(obj: dict) -> HealthResult:
    """Finished (Complete or Failed condition) or suspended; running otherwise. FailureTarget and
    SuccessCriteriaMet alone are not an end: the Job still has pods to wait for."""
    failed = complete = suspended = False
    message = fail_message = ""
    for c in status(obj).get("conditions") or []:
        kind = c.get("type")
        if kind == "Failed":
            failed = complete = True
            fail_message = c.get("message") or ""
        elif kind == "Complete":
            complete, message = True, c.get("message") or ""
        elif kind == "Suspended" and c.get("status") == "True":
            # Argo CD also ends on Suspended=False (a resumed Job), calling it Healthy while it
            # runs; a resumed Job is running here (see the README).
            complete = suspended = True
            message = c.get("message") or ""
    if not complete:
        return HealthResult(PROGRESSING, message)
    if failed:
        return HealthResult(DEGRADED, fail_message)
    if suspended:
        return HealthResult(SUSPENDED, message)
    return HealthResult(HEALTHY, message)


def cronjob(obj: dict) -> HealthResult:
    """Argo CD's bundled check: only a finished last run that did not succeed is Degraded; a
    suspended CronJob is Healthy (Argo CD's choice, so that it does not hold an app back)."""
    if spec(obj).get("suspend") is True:
        return HealthResult(HEALTHY, "CronJob is Suspended")
    st = obj.get("status")
    if st is None:
        return HealthResult(PROGRESSING, "Waiting for CronJob")
    scheduled, succeeded = st.get("lastScheduleTime"), st.get("lastSuccessfulTime")
    if scheduled is None:
        return HealthResult(HEALTHY, "CronJob has not been scheduled yet")
    if succeeded is None:
        return HealthResult(HEALTHY, "The CronJob never completed successfully. It may not be "
                                     "healthy")
    if st.get("active"):
        return HealthResult(HEALTHY, "The job is running. Its last execution may not have been "
                                     "successful")
    # RFC 3339 times in UTC as the API writes them compare correctly as strings.
    if succeeded < scheduled:
        return HealthResult(DEGRADED, "CronJob has not completed its last execution successfully")
    return HealthResult(HEALTHY, "CronJob has completed its last execution successfully")
