"""apps.engine.health: per-kind health rules (Argo CD's; see also test_health_argo.py).

Two kinds of tests live here:

* CLUSTER tests (`kube` fixture) create real objects on the local control plane (real
  controllers, KWOK nodes) in a fresh namespace, read them back as the API's JSON and assert what
  assess() says as the controllers move them along.
* TABLE tests are pure: dicts shaped exactly like objects read back from that cluster (trimmed of
  metadata noise), with status fields set to states the fake cluster cannot produce (a crash
  looping or image-pull-failing container, a failed Pod or Job, a lost PVC, a CronJob whose last
  run failed...). Each table says where its shape came from.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import time
import uuid

import pytest

from apps.engine.health import (DEGRADED, HEALTHY, MISSING, PROGRESSING, SUSPENDED, UNKNOWN,
                                Health, HealthResult, assess, worst)


def with_(base: dict, **paths) -> dict:
    """A deep copy of `base` with dotted paths set: with_(obj, **{"spec.paused": True})."""
    obj = copy.deepcopy(base)
    for path, value in paths.items():
        *parents, last = path.split(".")
        node = obj
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return obj


def check(obj, status, in_message=""):
    result = assess(obj)
    assert result.status == status, result
    assert in_message in result.message, result


# === TABLE: API, ordering, generic fallback ====================================================
def test_none_is_missing():
    assert assess(None) == HealthResult(MISSING, "resource does not exist")
    assert assess(None).status == "Missing"


def test_statuses_are_the_plain_strings():
    assert [str(s) for s in Health] == [
        "Healthy", "Suspended", "Progressing", "Missing", "Degraded", "Unknown"]
    assert HEALTHY == "Healthy" and isinstance(DEGRADED, str)
    result = assess({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    assert result.status == "Healthy" and json.dumps(result.status) == '"Healthy"'
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.status = DEGRADED


@pytest.mark.parametrize("statuses, expected", [
    ([], HEALTHY),
    (["Healthy", "Healthy"], HEALTHY),
    (["Healthy", "Suspended"], SUSPENDED),
    (["Suspended", "Progressing", "Healthy"], PROGRESSING),
    (["Progressing", "Missing"], MISSING),
    (["Missing", "Degraded", "Healthy"], DEGRADED),
    (["Degraded", "Unknown"], UNKNOWN),
    (["Healthy", "no-such-status"], UNKNOWN),
    ([HealthResult(PROGRESSING, "x"), HEALTHY, "Suspended"], PROGRESSING),
])
def test_worst(statuses, expected):
    assert worst(statuses) == expected
    assert worst(iter(statuses)) == expected  # any iterable


def test_worst_order_is_argo_cds():
    order = ["Healthy", "Suspended", "Progressing", "Missing", "Degraded", "Unknown"]
    for i, better in enumerate(order):
        for worse in order[i:]:
            assert worst([better, worse]) == worse
            assert worst([worse, better]) == worse


CONFIGMAP = {"kind": "ConfigMap", "apiVersion": "v1",
             "metadata": {"name": "c", "namespace": "ns", "resourceVersion": "1",
                          "creationTimestamp": "2026-11-26T21:38:36Z"},
             "data": {"k": "v"}}
# A custom resource as a typical operator writes it (Flux / cert-manager style conditions).
CUSTOM = {"apiVersion": "example.com/v1", "kind": "Widget",
          "metadata": {"name": "w", "namespace": "ns", "generation": 2},
          "spec": {"size": 1},
          "status": {"observedGeneration": 2, "conditions": [
              {"type": "Ready", "status": "True", "reason": "Succeeded", "message": "all good",
               "lastTransitionTime": "2026-11-26T21:38:36Z"}]}}


def cond(type_, status, reason="", message=""):
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": "2026-11-26T21:38:36Z"}


@pytest.mark.parametrize("obj, status, message", [
    (CONFIGMAP, HEALTHY, ""),
    (CUSTOM, HEALTHY, ""),
    ({"apiVersion": "example.com/v1", "kind": "NoStatus", "metadata": {"name": "x"}}, HEALTHY, ""),
    (with_(CUSTOM, **{"status.observedGeneration": 1}), PROGRESSING, "observe"),
    (with_(CUSTOM, **{"status": {}}), HEALTHY, ""),  # a controller that reports no generation
    (with_(CUSTOM, **{"status.observedGeneration": 0}), PROGRESSING, "observe"),
    (with_(CUSTOM, **{"status.conditions": [cond("Ready", "False", "Progressing", "building")]}),
     PROGRESSING, "building"),
    (with_(CUSTOM, **{"status.conditions": [cond("Ready", "False", "ReconciliationPending")]}),
     PROGRESSING, "ReconciliationPending"),
    (with_(CUSTOM, **{"status.conditions": [cond("Ready", "Unknown", "Reconciling", "working")]}),
     PROGRESSING, "working"),
    (with_(CUSTOM, **{"status.conditions": [cond("Ready", "False", "BuildFailed", "oops")]}),
     DEGRADED, "oops"),
    (with_(CUSTOM, **{"status.conditions": [cond("Available", "False", "Unreachable")]}),
     DEGRADED, "Unreachable"),
    (with_(CUSTOM, **{"status.conditions": [cond("Stalled", "True", "Invalid", "bad spec"),
                                            cond("Ready", "False", "Progressing")]}),
     DEGRADED, "bad spec"),
    (with_(CUSTOM, **{"status.conditions": [cond("Reconciling", "True", "Scaling", "1 of 3")]}),
     PROGRESSING, "1 of 3"),
])
def test_generic_rule(obj, status, message):
    check(obj, status, message)


def test_anything_being_deleted_is_progressing():
    for obj in (CONFIGMAP, CUSTOM, DEPLOYMENT, POD_RUNNING):
        deleting = with_(obj, **{"metadata.deletionTimestamp": "2026-11-26T21:40:00Z"})
        assert assess(deleting) == HealthResult(PROGRESSING, "Pending deletion")


def test_object_held_by_argo_cds_hook_finalizer_is_judged_by_its_own_rule():
    held = with_(POD_RUNNING, **{"metadata.deletionTimestamp": "2026-11-26T21:40:00Z",
                                 "metadata.finalizers": ["argocd.argoproj.io/hook-finalizer"],
                                 "status.phase": "Succeeded"})
    assert assess(held).status == HEALTHY


def test_malformed_object_is_unknown_not_an_exception():
    check(with_(DEPLOYMENT, **{"spec.replicas": "three"}), UNKNOWN, "cannot assess")
    check(with_(POD_RUNNING, **{"status.containerStatuses": ["oops"]}), UNKNOWN, "cannot assess")


# === TABLE: workloads ==========================================================================
# Shape: a Deployment read back from the local cluster after it rolled out (2 replicas).
DEPLOYMENT = {
    "kind": "Deployment", "apiVersion": "apps/v1",
    "metadata": {"name": "w", "namespace": "ns", "generation": 1,
                 "annotations": {"deployment.kubernetes.io/revision": "1"}},
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "w"}},
             "template": {"metadata": {"labels": {"app": "w"}},
                          "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}},
             "strategy": {"type": "RollingUpdate",
                          "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
             "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600},
    "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2,
               "availableReplicas": 2, "terminatingReplicas": 0, "conditions": [
                   {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                    "message": "Deployment has minimum availability.",
                    "lastUpdateTime": "2026-11-26T21:38:36Z",
                    "lastTransitionTime": "2026-11-26T21:38:36Z"},
                   {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                    "message": 'ReplicaSet "w-5b6f65c485" has successfully progressed.',
                    "lastUpdateTime": "2026-11-26T21:38:36Z",
                    "lastTransitionTime": "2026-11-26T21:38:36Z"}]}}
# Shape: the status the real controller wrote past progressDeadlineSeconds (pods unschedulable).
DEADLINE_STATUS = {
    "observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "unavailableReplicas": 2,
    "terminatingReplicas": 0, "conditions": [
        {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
         "message": "Deployment does not have minimum availability.",
         "lastUpdateTime": "2026-11-26T21:38:36Z", "lastTransitionTime": "2026-11-26T21:38:36Z"},
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
         "message": 'ReplicaSet "b-565dd8975" has timed out progressing.',
         "lastUpdateTime": "2026-11-26T21:38:39Z", "lastTransitionTime": "2026-11-26T21:38:39Z"}]}


@pytest.mark.parametrize("changes, status, message", [
    ({}, HEALTHY, ""),
    ({"spec.paused": True}, SUSPENDED, "Deployment is paused"),
    ({"spec.paused": True, "status.observedGeneration": 0}, SUSPENDED, "Deployment is paused"),
    ({"metadata.generation": 2}, PROGRESSING,
     "Waiting for rollout to finish: observed deployment generation less than desired generation"),
    ({"status": {}}, PROGRESSING,  # just created
     "Waiting for rollout to finish: observed deployment generation less than desired generation"),
    ({"status": DEADLINE_STATUS}, DEGRADED, 'Deployment "w" exceeded its progress deadline'),
    ({"status.updatedReplicas": 1}, PROGRESSING,
     "Waiting for rollout to finish: 1 out of 2 new replicas have been updated..."),
    ({"status.replicas": 3}, PROGRESSING,
     "Waiting for rollout to finish: 1 old replicas are pending termination..."),
    ({"status.availableReplicas": 1}, PROGRESSING,
     "Waiting for rollout to finish: 1 of 2 updated replicas are available..."),
    ({"spec.replicas": 0, "status.replicas": 0, "status.updatedReplicas": 0,
      "status.readyReplicas": 0, "status.availableReplicas": 0}, HEALTHY, ""),
])
def test_deployment_table(changes, status, message):
    assert assess(with_(DEPLOYMENT, **changes)) == HealthResult(status, message)


# Shape: a StatefulSet (3 replicas) read back from the local cluster after it rolled out.
STATEFULSET = {
    "kind": "StatefulSet", "apiVersion": "apps/v1",
    "metadata": {"name": "s", "namespace": "ns", "generation": 1},
    "spec": {"replicas": 3, "serviceName": "s", "selector": {"matchLabels": {"app": "s"}},
             "template": {"metadata": {"labels": {"app": "s"}},
                          "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}},
             "podManagementPolicy": "OrderedReady",
             "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
             "revisionHistoryLimit": 10},
    "status": {"observedGeneration": 1, "replicas": 3, "readyReplicas": 3, "currentReplicas": 3,
               "updatedReplicas": 3, "currentRevision": "s-7877749d74",
               "updateRevision": "s-7877749d74", "collisionCount": 0, "availableReplicas": 3}}


@pytest.mark.parametrize("changes, status, message", [
    ({}, HEALTHY, "partitioned roll out complete: 3 new pods have been updated..."),
    ({"metadata.generation": 2}, PROGRESSING,
     "Waiting for statefulset spec update to be observed..."),
    ({"status.observedGeneration": 0}, PROGRESSING,
     "Waiting for statefulset spec update to be observed..."),
    ({"status.readyReplicas": 2}, PROGRESSING, "Waiting for 1 pods to be ready..."),
    # a rolling update with the partition 0 the API server fills in: done once all updated
    ({"status.updateRevision": "s-787b75998c", "status.updatedReplicas": 1}, PROGRESSING,
     "Waiting for partitioned roll out to finish: 1 out of 3 new pods have been updated..."),
    # the real status after a rollout with partition 2: only ordinal 2 updated
    ({"spec.updateStrategy.rollingUpdate.partition": 2, "status.currentReplicas": 2,
      "status.updatedReplicas": 1, "status.updateRevision": "s-57c5748fbd"}, HEALTHY,
     "partitioned roll out complete: 1 new pods have been updated..."),
    ({"spec.updateStrategy.rollingUpdate.partition": 2, "status.currentReplicas": 3,
      "status.updatedReplicas": 0, "status.updateRevision": "s-57c5748fbd"}, PROGRESSING,
     "Waiting for partitioned roll out to finish: 0 out of 1 new pods have been updated..."),
    ({"spec.updateStrategy": {"type": "OnDelete"}, "status.updatedReplicas": 0,
      "status.updateRevision": "s-57c5748fbd"}, HEALTHY, "statefulset has 3 ready pods"),
    ({"spec.updateStrategy": {"type": "OnDelete"}, "status.readyReplicas": 1}, PROGRESSING,
     "Waiting for 2 pods to be ready..."),
    # a strategy without rollingUpdate (not what the API server stores) compares revisions
    ({"spec.updateStrategy": {"type": "RollingUpdate"}, "status.updatedReplicas": 1,
      "status.updateRevision": "s-57c5748fbd"}, PROGRESSING,
     "waiting for statefulset rolling update to complete 1 pods at revision s-57c5748fbd..."),
    ({"spec.updateStrategy": {"type": "RollingUpdate"}}, HEALTHY,
     "statefulset rolling update complete 3 pods at revision s-7877749d74..."),
])
def test_statefulset_table(changes, status, message):
    assert assess(with_(STATEFULSET, **changes)) == HealthResult(status, message)


# Shape: a DaemonSet read back from the local cluster once its pods ran on the 3 KWOK nodes.
DAEMONSET = {
    "kind": "DaemonSet", "apiVersion": "apps/v1",
    "metadata": {"name": "d", "namespace": "ns", "generation": 1},
    "spec": {"selector": {"matchLabels": {"app": "d"}},
             "template": {"metadata": {"labels": {"app": "d"}},
                          "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}},
             "updateStrategy": {"type": "RollingUpdate",
                                "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
             "revisionHistoryLimit": 10},
    "status": {"currentNumberScheduled": 3, "numberMisscheduled": 0, "desiredNumberScheduled": 3,
               "numberReady": 3, "observedGeneration": 1, "updatedNumberScheduled": 3,
               "numberAvailable": 3}}


@pytest.mark.parametrize("changes, status, message", [
    ({}, HEALTHY, ""),
    ({"metadata.generation": 2}, PROGRESSING, "Waiting for rollout to finish: observed daemon "
                                              "set generation less than desired generation"),
    ({"status.updatedNumberScheduled": 2}, PROGRESSING, 'Waiting for daemon set "d" rollout to '
                                                        "finish: 2 out of 3 new pods have been "
                                                        "updated..."),
    ({"status.numberAvailable": 2}, PROGRESSING, 'Waiting for daemon set "d" rollout to finish: '
                                                 "2 of 3 updated pods are available..."),
    ({"spec.updateStrategy": {"type": "OnDelete"}, "status.updatedNumberScheduled": 1}, HEALTHY,
     "daemon set 1 out of 3 new pods have been updated"),
    ({"status": {"observedGeneration": 1, "desiredNumberScheduled": 0, "currentNumberScheduled": 0,
                 "numberMisscheduled": 0, "numberReady": 0}}, HEALTHY, ""),
])
def test_daemonset_table(changes, status, message):
    assert assess(with_(DAEMONSET, **changes)) == HealthResult(status, message)


REPLICASET = {
    "kind": "ReplicaSet", "apiVersion": "apps/v1",
    "metadata": {"name": "r", "namespace": "ns", "generation": 1},
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "r"}},
             "template": {"metadata": {"labels": {"app": "r"}},
                          "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}},
    "status": {"replicas": 2, "fullyLabeledReplicas": 2, "readyReplicas": 2,
               "availableReplicas": 2, "terminatingReplicas": 0, "observedGeneration": 1}}


@pytest.mark.parametrize("changes, status, message", [
    ({}, HEALTHY, ""),
    ({"status.availableReplicas": 1}, PROGRESSING,
     "Waiting for rollout to finish: 1 out of 2 new replicas are available..."),
    ({"status.observedGeneration": 0}, PROGRESSING, "Waiting for rollout to finish: observed "
                                                    "replica set generation less than desired "
                                                    "generation"),
    # what the controller writes when a ResourceQuota refuses the pods (not reproducible here
    # without also writing a quota test; the shape is the documented ReplicaSetCondition)
    ({"status.availableReplicas": 0, "status.conditions": [cond(
        "ReplicaFailure", "True", "FailedCreate",
        'pods "r-x" is forbidden: exceeded quota: q, requested: pods=1, used: pods=1')]},
     DEGRADED, "exceeded quota"),
])
def test_replicaset_table(changes, status, message):
    check(with_(REPLICASET, **changes), status, message)


# Shape: a Deployment's Pod read back from the local cluster once KWOK made it Running/Ready.
POD_RUNNING = {
    "kind": "Pod", "apiVersion": "v1",
    "metadata": {"name": "w-5b6f65c485-lrw4w", "namespace": "ns", "generation": 1,
                 "labels": {"app": "w", "pod-template-hash": "5b6f65c485"}},
    "spec": {"containers": [{"name": "c", "image": "nginx:1", "imagePullPolicy": "IfNotPresent"}],
             "restartPolicy": "Always", "nodeName": "kwok-node-0",
             "serviceAccountName": "default"},
    "status": {
        "phase": "Running",
        "conditions": [
            {"type": "Initialized", "status": "True", "lastProbeTime": None,
             "lastTransitionTime": "2026-11-26T21:38:36Z"},
            {"type": "Ready", "status": "True", "lastProbeTime": None,
             "lastTransitionTime": "2026-11-26T21:38:36Z"},
            {"type": "ContainersReady", "status": "True", "lastProbeTime": None,
             "lastTransitionTime": "2026-11-26T21:38:36Z"},
            {"type": "PodScheduled", "status": "True", "lastProbeTime": None,
             "lastTransitionTime": "2026-11-26T21:38:36Z"}],
        "podIP": "10.0.0.2", "podIPs": [{"ip": "10.0.0.2"}],
        "startTime": "2026-11-26T21:38:36Z",
        "containerStatuses": [
            {"name": "c", "state": {"running": {"startedAt": "2026-11-26T21:38:36Z"}},
             "lastState": {}, "ready": True, "restartCount": 0, "image": "nginx:1",
             "imageID": ""}],
        "qosClass": "BestEffort"}}


def pod_conditions(ready: str):
    return [dict(c, status=ready) if c["type"] in ("Ready", "ContainersReady") else c
            for c in POD_RUNNING["status"]["conditions"]]


def waiting(reason, message="", name="c"):
    return [{"name": name, "state": {"waiting": {"reason": reason, "message": message}},
             "lastState": {}, "ready": False, "restartCount": 0, "image": "nginx:1",
             "imageID": ""}]


CRASHLOOP = [{
    "name": "c", "ready": False, "restartCount": 5, "image": "nginx:1", "imageID": "",
    "state": {"waiting": {"reason": "CrashLoopBackOff",
                          "message": "back-off 2m40s restarting failed container=c pod=p"}},
    "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                 "startedAt": "2026-11-26T21:40:00Z",
                                 "finishedAt": "2026-11-26T21:40:01Z"}}}]


# Pod states a kubelet reports are written on real Pods in test_health_argo.py; these are the
# shapes that cannot be stored there or that only differ in a detail.
@pytest.mark.parametrize("changes, status, message", [
    ({}, HEALTHY, ""),
    # Argo CD reads only the app containers' waiting reasons: a crash-looping init container
    # leaves the Pod Pending, so Progressing
    ({"status.phase": "Pending", "status.containerStatuses": waiting("PodInitializing"),
      "status.initContainerStatuses": waiting("CrashLoopBackOff", "back-off", name="init")},
     PROGRESSING, ""),
    # a kubelet error without a message shows its reason rather than nothing
    ({"status.phase": "Pending", "status.containerStatuses": waiting("ErrImagePull")},
     DEGRADED, "ErrImagePull"),
    ({"status.phase": "Pending", "status.containerStatuses": waiting("ErrImagePull", "a")
      + [dict(waiting("CrashLoopBackOff", "b")[0], name="d")]}, DEGRADED, "a, b"),
    # a Pod written without restartPolicy reads as the API server's default, Always
    ({"spec": {"containers": POD_RUNNING["spec"]["containers"]},
      "status.containerStatuses": CRASHLOOP}, DEGRADED,
     "back-off 2m40s restarting failed container=c pod=p"),
    # the pod message is Argo CD's message in every phase
    ({"status.message": "preempted", "status.conditions": pod_conditions("False")},
     PROGRESSING, "preempted"),
    ({"status.phase": "Unknown"}, UNKNOWN, ""),
])
def test_pod_table(changes, status, message):
    assert assess(with_(POD_RUNNING, **changes)) == HealthResult(status, message)


# Shape: a Job read back from the local cluster after KWOK made its pod Succeeded.
JOB = {
    "kind": "Job", "apiVersion": "batch/v1",
    "metadata": {"name": "j", "namespace": "ns", "generation": 1},
    "spec": {"parallelism": 1, "completions": 1, "backoffLimit": 6, "suspend": False,
             "completionMode": "NonIndexed", "podReplacementPolicy": "TerminatingOrFailed",
             "template": {"spec": {"restartPolicy": "Never",
                                   "containers": [{"name": "c", "image": "busybox"}]}}},
    "status": {"conditions": [
        {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
         "message": "Reached expected number of succeeded pods",
         "lastProbeTime": "2026-11-26T21:39:29Z", "lastTransitionTime": "2026-11-26T21:39:29Z"},
        {"type": "Complete", "status": "True", "reason": "CompletionsReached",
         "message": "Reached expected number of succeeded pods",
         "lastProbeTime": "2026-11-26T21:39:29Z", "lastTransitionTime": "2026-11-26T21:39:29Z"}],
        "startTime": "2026-11-26T21:39:28Z", "completionTime": "2026-11-26T21:39:29Z",
        "succeeded": 1, "terminating": 0, "uncountedTerminatedPods": {}, "ready": 0}}
JOB_RUNNING = {"startTime": "2026-11-26T21:39:28Z", "active": 1, "terminating": 0,
               "uncountedTerminatedPods": {}, "ready": 1}
JOB_FAILED = {"startTime": "2026-11-26T21:39:28Z", "failed": 7, "terminating": 0,
              "uncountedTerminatedPods": {}, "ready": 0, "conditions": [
                  cond("FailureTarget", "True", "BackoffLimitExceeded",
                       "Job has reached the specified backoff limit"),
                  cond("Failed", "True", "BackoffLimitExceeded",
                       "Job has reached the specified backoff limit")]}


# A failed Job and a suspended one are produced for real in test_health_argo.py.
@pytest.mark.parametrize("changes, status, message", [
    ({}, HEALTHY, "Reached expected number of succeeded pods"),
    ({"status": JOB_RUNNING}, PROGRESSING, ""),
    ({"status": {}}, PROGRESSING, ""),
    ({"status": JOB_FAILED}, DEGRADED, "Job has reached the specified backoff limit"),
    # FailureTarget is set before the last pods finish; the Job ends with Failed, after them
    ({"status": {"conditions": JOB_FAILED["conditions"][:1]}}, PROGRESSING, ""),
    ({"status": {"conditions": [cond("SuccessCriteriaMet", "True", "CompletionsReached")]}},
     PROGRESSING, ""),
    ({"spec.suspend": True, "status": {"conditions": [
        cond("Suspended", "True", "JobSuspended", "Job suspended")]}}, SUSPENDED, "Job suspended"),
    # resumed: running again (Argo CD would say Healthy here; see the README)
    ({"status": {"conditions": [cond("Suspended", "False", "JobResumed", "Job resumed")],
                 **JOB_RUNNING}}, PROGRESSING, ""),
    ({"spec.suspend": True}, HEALTHY, "Reached expected number of succeeded pods"),
])
def test_job_table(changes, status, message):
    assert assess(with_(JOB, **changes)) == HealthResult(status, message)


def test_cronjob_without_any_status_is_waiting():
    # Argo CD's check; the API server always stores a status ({}), so only a fixture has none
    cronjob = {"kind": "CronJob", "apiVersion": "batch/v1", "metadata": {"name": "cj"},
               "spec": {"schedule": "*/5 * * * *", "jobTemplate": {}}}
    assert assess(cronjob) == HealthResult(PROGRESSING, "Waiting for CronJob")


# === TABLE: networking, storage, cluster =======================================================
# Shape: a LoadBalancer Service read back from the local cluster (no LB controller there).
SERVICE_LB = {
    "kind": "Service", "apiVersion": "v1", "metadata": {"name": "lb", "namespace": "ns"},
    "spec": {"ports": [{"protocol": "TCP", "port": 80, "targetPort": 80, "nodePort": 30995}],
             "selector": {"app": "w"}, "clusterIP": "10.0.0.226", "clusterIPs": ["10.0.0.226"],
             "type": "LoadBalancer", "sessionAffinity": "None",
             "externalTrafficPolicy": "Cluster", "ipFamilies": ["IPv4"],
             "ipFamilyPolicy": "SingleStack", "allocateLoadBalancerNodePorts": True,
             "internalTrafficPolicy": "Cluster"},
    "status": {"loadBalancer": {}}}
# Shape: an Ingress read back from the local cluster (no ingress controller there).
INGRESS = {
    "kind": "Ingress", "apiVersion": "networking.k8s.io/v1",
    "metadata": {"name": "i", "namespace": "ns", "generation": 1},
    "spec": {"defaultBackend": {"service": {"name": "s", "port": {"number": 80}}}},
    "status": {"loadBalancer": {}}}


# An entry with neither ip nor hostname is written on real objects in test_health_argo.py.
@pytest.mark.parametrize("obj, status, message", [
    (SERVICE_LB, PROGRESSING, "Waiting for a load balancer to be assigned"),
    (with_(SERVICE_LB, **{"status.loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}}),
     HEALTHY, ""),
    (with_(SERVICE_LB, **{"status.loadBalancer": {"ingress": [{"hostname": "lb.example.com"}]}}),
     HEALTHY, ""),
    (with_(SERVICE_LB, **{"spec.type": "ClusterIP"}), HEALTHY, ""),
    (with_(SERVICE_LB, **{"spec.type": "NodePort"}), HEALTHY, ""),
    (INGRESS, PROGRESSING, "Waiting for an ingress controller to assign an address"),
    (with_(INGRESS, **{"status.loadBalancer": {"ingress": [{"ip": "10.0.0.9"}]}}), HEALTHY, ""),
    # an API group no server serves any more, still judged as Argo CD does
    (with_(INGRESS, apiVersion="extensions/v1beta1"), PROGRESSING, "address"),
])
def test_service_and_ingress_table(obj, status, message):
    check(obj, status, message)


PVC = {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
       "metadata": {"name": "c", "namespace": "ns"},
       "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                "storageClassName": "manual", "volumeMode": "Filesystem", "volumeName": "pv"},
       "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"],
                  "capacity": {"storage": "1Gi"}}}
NAMESPACE = {"kind": "Namespace", "apiVersion": "v1",
             "metadata": {"name": "ns", "labels": {"kubernetes.io/metadata.name": "ns"}},
             "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


@pytest.mark.parametrize("obj, status, message", [
    (PVC, HEALTHY, ""),
    (with_(PVC, **{"status": {"phase": "Pending"}}), PROGRESSING,
     "Waiting for the claim to be bound"),
    # Lost needs the bound volume deleted from under a claim, which the PV protection forbids
    (with_(PVC, **{"status.phase": "Lost"}), DEGRADED, "The bound volume is lost"),
    (with_(PVC, **{"status": {}}), UNKNOWN, "No claim phase"),
    # Argo CD has no rule for Namespaces; "Terminating" always comes with a deletionTimestamp
    (NAMESPACE, HEALTHY, ""),
])
def test_pvc_and_namespace_table(obj, status, message):
    assert assess(obj) == HealthResult(status, message)


# Shape: autoscaling/v2 HPAs read back from the local cluster (it has no metrics API, so the
# real controller reports FailedGetResourceMetric; the other states are set by hand).
HPA = {
    "kind": "HorizontalPodAutoscaler", "apiVersion": "autoscaling/v2",
    "metadata": {"name": "h1", "namespace": "ns"},
    "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "w", "apiVersion": "apps/v1"},
             "minReplicas": 1, "maxReplicas": 3, "metrics": [{"type": "Resource", "resource": {
                 "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]},
    "status": {"currentReplicas": 2, "desiredReplicas": 0, "currentMetrics": [{"type": ""}],
               "conditions": [
                   cond("AbleToScale", "True", "SucceededGetScale",
                        "the HPA controller was able to get the target's current scale"),
                   cond("ScalingActive", "False", "FailedGetResourceMetric",
                        "the HPA was unable to compute the replica count: failed to get cpu "
                        "utilization: unable to get metrics for resource cpu")]}}
HPA_OK = [cond("AbleToScale", "True", "ReadyForNewScale", "recommended size matches current size"),
          cond("ScalingActive", "True", "ValidMetricFound",
               "the HPA was able to successfully calculate a replica count from cpu resource "
               "utilization (percentage of request)"),
          cond("ScalingLimited", "True", "TooFewReplicas",
               "the desired replica count is less than the minimum replica count")]


V1_HPA = {"kind": "HorizontalPodAutoscaler", "apiVersion": "autoscaling/v1",
          "metadata": {"name": "h1", "namespace": "ns"},
          "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "w", "apiVersion": "apps/v1"},
                   "minReplicas": 1, "maxReplicas": 3, "targetCPUUtilizationPercentage": 50},
          "status": {"currentReplicas": 1, "desiredReplicas": 1}}


def v1_hpa(annotation: str) -> dict:
    return with_(V1_HPA, **{"metadata.annotations": {
        "autoscaling.alpha.kubernetes.io/conditions": annotation}})


# The states the local controller reaches (no metrics, a missing target, a target at zero) and
# a status written by hand are judged on real HPAs in test_health_argo.py.
@pytest.mark.parametrize("obj, status, message", [
    # a failure condition wins even after AbleToScale=True
    (HPA, DEGRADED, "the HPA was unable to compute the replica count: failed to get cpu "
                    "utilization: unable to get metrics for resource cpu"),
    # otherwise the first AbleToScale=True or ScalingLimited=True gives the message
    (with_(HPA, **{"status.conditions": HPA_OK}), HEALTHY,
     "recommended size matches current size"),
    (with_(HPA, **{"status.conditions": HPA_OK[1:]}), HEALTHY,
     "the desired replica count is less than the minimum replica count"),
    (with_(HPA, **{"status.conditions": HPA_OK[1:2]}), PROGRESSING, "Waiting to Autoscale"),
    (with_(HPA, **{"status": {"currentReplicas": 0, "desiredReplicas": 0}}), PROGRESSING,
     "Waiting to Autoscale"),
    # gitops-engine's v1 shapes: no annotation with current == desired, an empty list
    (V1_HPA, PROGRESSING, "Waiting to Autoscale"),
    (v1_hpa("[]"), PROGRESSING, "Waiting to Autoscale"),
    (v1_hpa(json.dumps(HPA_OK)), HEALTHY, "recommended size matches current size"),
    (v1_hpa("{not json"), UNKNOWN, "failed to convert conditions annotation"),
])
def test_hpa_table(obj, status, message):
    check(obj, status, message)


@pytest.mark.parametrize("type_, reason", [
    ("AbleToScale", "FailedGetScale"), ("AbleToScale", "FailedUpdateScale"),
    ("ScalingActive", "FailedGetResourceMetric"), ("ScalingActive", "FailedGetObjectMetric"),
    ("ScalingActive", "FailedGetPodsMetric"), ("ScalingActive", "FailedGetExternalMetric"),
    ("ScalingActive", "FailedComputeMetricsReplicas"), ("ScalingActive", "InvalidSelector"),
])
def test_hpa_failure_reasons_are_degraded(type_, reason):
    conditions = [cond(type_, "False", reason, f"{reason} happened")]
    assert assess(with_(HPA, **{"status.conditions": conditions})) == HealthResult(
        DEGRADED, f"{reason} happened")
    assert assess(v1_hpa(json.dumps(conditions))).status == DEGRADED


# Shape: APIServices read back from the local cluster (a local one, and one whose Service is
# missing); FailedDiscoveryCheck needs a running but broken extension server, set by hand.
APISERVICE = {
    "kind": "APIService", "apiVersion": "apiregistration.k8s.io/v1",
    "metadata": {"name": "v1alpha1.nothing.example.com"},
    "spec": {"service": {"namespace": "ns", "name": "nope", "port": 443},
             "group": "nothing.example.com", "version": "v1alpha1",
             "insecureSkipTLSVerify": True, "groupPriorityMinimum": 1000, "versionPriority": 15},
    "status": {"conditions": [cond("Available", "False", "ServiceNotFound",
                                   'service/nope in "ns" is not present')]}}


@pytest.mark.parametrize("obj, status, message", [
    (with_(APISERVICE, **{"status.conditions": [cond(
        "Available", "False", "FailedDiscoveryCheck",
        "failing or missing response from https://10.0.0.5:443/apis/nothing.example.com/v1alpha1")
    ]}), PROGRESSING, "FailedDiscoveryCheck: failing or missing response from "
                      "https://10.0.0.5:443/apis/nothing.example.com/v1alpha1"),
    (with_(APISERVICE, apiVersion="apiregistration.k8s.io/v1beta1"), PROGRESSING,
     'ServiceNotFound: service/nope in "ns" is not present'),
])
def test_apiservice_table(obj, status, message):
    assert assess(obj) == HealthResult(status, message)


# --- Argo CD's bundled checks: CRD and PodDisruptionBudget states the local cluster cannot reach
CRD = {"kind": "CustomResourceDefinition", "apiVersion": "apiextensions.k8s.io/v1",
       "metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com"},
       "status": {"conditions": [
           cond("NamesAccepted", "True", "NoConflicts", "no conflicts found"),
           cond("Established", "True", "InitialNamesAccepted", "the initial names have been "
                                                               "accepted")]}}
PDB = {"kind": "PodDisruptionBudget", "apiVersion": "policy/v1",
       "metadata": {"name": "p", "namespace": "ns"}, "spec": {"minAvailable": 1},
       "status": {"conditions": [cond("DisruptionAllowed", "False", "SyncFailed", "oops")]}}


@pytest.mark.parametrize("obj, status, message", [
    (CRD, HEALTHY, "CRD is healthy"),
    (with_(CRD, **{"status.conditions": [cond("NamesAccepted", "False", "KindConflict",
                                              "kind Widget is already in use")]}),
     DEGRADED, "CRD names have not been accepted: kind Widget is already in use"),
    (with_(CRD, **{"status.conditions": CRD["status"]["conditions"] + [
        cond("NonStructuralSchema", "True", "Violations", "spec.versions[0].schema: Required")]}),
     DEGRADED, "Schema violations found: spec.versions[0].schema: Required"),
    (with_(CRD, **{"status.conditions": [cond("Established", "False", "Installing", "")]}),
     PROGRESSING, "CRD is being installed"),
    (with_(CRD, **{"status.conditions": [cond("Established", "False", "NotEstablished", "")]}),
     DEGRADED, "CRD is not established"),
    (with_(CRD, **{"status.conditions": CRD["status"]["conditions"] + [
        cond("Terminating", "True", "InstanceDeletionInProgress", "deleting instances")]}),
     PROGRESSING, "CRD is terminating: deleting instances"),
    (PDB, DEGRADED, "PodDisruptionBudget has SyncFailed"),
    (with_(PDB, status={}), PROGRESSING, "Waiting for status"),
])
def test_bundled_checks_table(obj, status, message):
    assert assess(obj) == HealthResult(status, message)


@pytest.mark.parametrize("phase, status", [
    ("", PROGRESSING), ("Pending", PROGRESSING), ("Running", PROGRESSING),
    ("Succeeded", HEALTHY), ("Failed", DEGRADED), ("Error", DEGRADED), ("Weird", UNKNOWN)])
def test_argo_workflow_by_phase(phase, status):
    workflow = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                "metadata": {"name": "w"}, "status": {"phase": phase, "message": "m"}}
    assert assess(workflow) == HealthResult(status, "m")


# === CLUSTER: real objects on the local control plane ==========================================
on_cluster = pytest.mark.timeout(900)  # the first run may build the control plane (~8 min cold)


def raw(call, *args, **kwargs) -> dict:
    """Call a kubernetes client method and return the API's JSON as a dict, untouched."""
    return json.loads(call(*args, _preload_content=False, **kwargs).data)


def settle(read, want: str, timeout: float = 30) -> tuple[list[HealthResult], dict]:
    """Poll read() (an object dict) until assess() says `want`. Returns the distinct results
    seen on the way and the last object; fails the test with them on timeout."""
    seen: list[HealthResult] = []
    deadline = time.monotonic() + timeout
    while True:
        obj = read()
        result = assess(obj)
        if not seen or seen[-1] != result:
            seen.append(result)
        if result.status == want:
            return seen, obj
        if time.monotonic() > deadline:
            pytest.fail(f"no {want} after {timeout}s; saw {[str(r) for r in seen]}; "
                        f"last status {json.dumps((obj or {}).get('status'))}")
        time.sleep(0.1)


def poll(read, done, timeout: float = 30) -> dict:
    """Poll read() until done(obj); return that object, or fail with the last one."""
    deadline = time.monotonic() + timeout
    while not done(obj := read()):
        if time.monotonic() > deadline:
            pytest.fail(f"condition not reached after {timeout}s; last status "
                        f"{json.dumps((obj or {}).get('status'))}")
        time.sleep(0.1)
    return obj


@pytest.fixture(scope="module")
def k8s(kube):
    """Typed API groups on one admin ApiClient."""
    from kubernetes import client

    api = kube.api_client()
    return type("K8s", (), dict(
        core=client.CoreV1Api(api), apps=client.AppsV1Api(api), batch=client.BatchV1Api(api),
        net=client.NetworkingV1Api(api), autoscaling=client.AutoscalingV2Api(api),
        registration=client.ApiregistrationV1Api(api)))


def _create_namespace(k8s) -> str:
    from kubernetes.client import ApiException

    name = f"health-{uuid.uuid4().hex[:8]}"
    k8s.core.create_namespace({"metadata": {"name": name}})

    def service_account_ready():  # Pods are refused until the default ServiceAccount exists
        try:
            k8s.core.read_namespaced_service_account("default", name)
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
    deadline = time.monotonic() + 30
    while not service_account_ready():
        assert time.monotonic() < deadline, "default ServiceAccount never appeared"
        time.sleep(0.1)
    return name


@pytest.fixture
def ns(k8s):
    name = _create_namespace(k8s)
    yield name
    k8s.core.delete_namespace(name)


def pod_template(app: str, image: str = "nginx:1.27", **spec) -> dict:
    return {"metadata": {"labels": {"app": app}},
            "spec": {"containers": [{"name": "c", "image": image}], **spec}}


def deployment(name: str, replicas: int = 2, **spec) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": pod_template(name), **spec}}


@on_cluster
def test_deployment_rolls_out_progressing_then_healthy(k8s, ns):
    created = raw(k8s.apps.create_namespaced_deployment, ns, deployment("web", 3))
    # the create response: no controller has seen it yet
    check(created, PROGRESSING, "observed deployment generation less than desired generation")
    read = lambda: raw(k8s.apps.read_namespaced_deployment, "web", ns)  # noqa: E731
    seen, obj = settle(read, HEALTHY)
    assert obj["status"]["availableReplicas"] == 3 and seen[-1].message == ""

    # a new image: generation 2 is Progressing until the rollout finishes
    patched = raw(k8s.apps.patch_namespaced_deployment, "web", ns, {"spec": {"template": {
        "spec": {"containers": [{"name": "c", "image": "nginx:1.28"}]}}}})
    assert patched["metadata"]["generation"] == 2
    check(patched, PROGRESSING)
    seen, obj = settle(read, HEALTHY)
    assert obj["status"]["observedGeneration"] == 2 and obj["status"]["updatedReplicas"] == 3


@on_cluster
def test_paused_deployment_is_suspended(k8s, ns):
    created = raw(k8s.apps.create_namespaced_deployment, ns, deployment("paused", paused=True))
    check(created, SUSPENDED, "paused")
    obj = poll(lambda: raw(k8s.apps.read_namespaced_deployment, "paused", ns),
               lambda o: o.get("status", {}).get("observedGeneration") == 1)
    check(obj, SUSPENDED, "Deployment is paused")  # after the controller saw it too


@on_cluster
def test_deployment_past_its_progress_deadline_is_degraded(k8s, ns):
    # Pods nothing can schedule, and 2 s to make progress: the real deployment controller sets
    # Progressing=False/ProgressDeadlineExceeded (about 3 s on this cluster).
    body = deployment("stuck", 1, progressDeadlineSeconds=2)
    body["spec"]["template"]["spec"]["nodeSelector"] = {"gitops-ui/no-such-node": "true"}
    raw(k8s.apps.create_namespaced_deployment, ns, body)
    seen, obj = settle(lambda: raw(k8s.apps.read_namespaced_deployment, "stuck", ns), DEGRADED, 30)
    assert PROGRESSING in [r.status for r in seen]
    assert seen[-1].message == 'Deployment "stuck" exceeded its progress deadline'


@on_cluster
def test_replicaset_becomes_healthy(k8s, ns):
    body = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "rs"}},
                     "template": pod_template("rs")}}
    check(raw(k8s.apps.create_namespaced_replica_set, ns, body), PROGRESSING)
    seen, _ = settle(lambda: raw(k8s.apps.read_namespaced_replica_set, "rs", ns), HEALTHY)
    assert seen[-1].message == ""


@on_cluster
def test_statefulset_rolls_out_and_partitions(k8s, ns):
    body = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
            "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                     "template": pod_template("db")}}
    check(raw(k8s.apps.create_namespaced_stateful_set, ns, body), PROGRESSING)
    read = lambda: raw(k8s.apps.read_namespaced_stateful_set, "db", ns)  # noqa: E731
    settle(read, HEALTHY)

    def new_image(image, partition=0):
        return raw(k8s.apps.patch_namespaced_stateful_set, "db", ns, {"spec": {
            "updateStrategy": {"rollingUpdate": {"partition": partition}},
            "template": {"spec": {"containers": [{"name": "c", "image": image}]}}}})

    check(new_image("nginx:1.28"), PROGRESSING)
    _, obj = settle(read, HEALTHY)
    assert obj["status"]["currentRevision"] == obj["status"]["updateRevision"]

    # partition 2: only ordinal 2 moves; that is a finished (partitioned) rollout
    check(new_image("nginx:1.29", partition=2), PROGRESSING)
    obj = poll(read, lambda o: o["status"].get("observedGeneration") == 3
               and o["status"].get("updatedReplicas") == 1
               and o["status"].get("readyReplicas") == 3)
    assert obj["status"]["currentRevision"] != obj["status"]["updateRevision"]
    check(obj, HEALTHY, "partitioned roll out complete: 1 new pods have been updated...")


@on_cluster
def test_daemonset_is_healthy_once_on_every_kwok_node(k8s, ns):
    nodes = k8s.core.list_node().items
    kwok = [n for n in nodes if (n.metadata.annotations or {}).get("kwok.x-k8s.io/node") == "fake"]
    assert len(kwok) == 3  # and the process node, if a kaniko test started it: tainted, no agent
    body = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "template": pod_template("agent")}}
    check(raw(k8s.apps.create_namespaced_daemon_set, ns, body), PROGRESSING)
    seen, obj = settle(lambda: raw(k8s.apps.read_namespaced_daemon_set, "agent", ns), HEALTHY)
    # desiredNumberScheduled 3: no node kept the pods away (the KWOK nodes carry no taints)
    assert obj["status"]["desiredNumberScheduled"] == 3, (obj["status"], [
        n.spec.taints for n in nodes])
    assert seen[-1].message == ""


@on_cluster
def test_pods_running_pending_and_running_to_completion(k8s, ns):
    def pod(name, **spec):
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}], **spec}}

    check(raw(k8s.core.create_namespaced_pod, ns, pod("web")), PROGRESSING)
    raw(k8s.core.create_namespaced_pod, ns, pod("nowhere", nodeSelector={"gitops-ui/none": "x"}))
    raw(k8s.core.create_namespaced_pod, ns, pod("once", restartPolicy="Never"))

    settle(lambda: raw(k8s.core.read_namespaced_pod, "web", ns), HEALTHY)
    obj = poll(lambda: raw(k8s.core.read_namespaced_pod, "nowhere", ns),
               lambda o: any(c["type"] == "PodScheduled" and c["status"] == "False"
                             for c in o["status"].get("conditions") or []))
    check(obj, PROGRESSING)
    # KWOK runs a bare restartPolicy=Never pod and leaves it Running: still Progressing
    obj = poll(lambda: raw(k8s.core.read_namespaced_pod, "once", ns),
               lambda o: o["status"].get("phase") == "Running")
    check(obj, PROGRESSING)


@on_cluster
def test_job_completes_healthy_and_suspended_job_is_suspended_once_the_controller_says_so(k8s, ns):
    def job(name, **spec):
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
                "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                    {"name": "c", "image": "busybox"}]}}, **spec}}

    check(raw(k8s.batch.create_namespaced_job, ns, job("once")), PROGRESSING)
    # suspended only once the controller has said so (Suspended condition)
    check(raw(k8s.batch.create_namespaced_job, ns, job("held", suspend=True)), PROGRESSING)
    seen, obj = settle(lambda: raw(k8s.batch.read_namespaced_job, "once", ns), HEALTHY)
    assert obj["status"]["succeeded"] == 1

    obj = poll(lambda: raw(k8s.batch.read_namespaced_job, "held", ns), lambda o: any(
        c["type"] == "Suspended" for c in o.get("status", {}).get("conditions", [])))
    check(obj, SUSPENDED, "Job suspended")  # with the controller's Suspended condition on it


@on_cluster
def test_cronjob_suspended_and_idle(k8s, ns):
    def cronjob(name, suspend):
        return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
                "spec": {"schedule": "0 0 1 1 *", "suspend": suspend, "jobTemplate": {"spec": {
                    "template": {"spec": {"restartPolicy": "Never", "containers": [
                        {"name": "c", "image": "busybox"}]}}}}}}

    raw(k8s.batch.create_namespaced_cron_job, ns, cronjob("off", True))
    raw(k8s.batch.create_namespaced_cron_job, ns, cronjob("yearly", False))
    # Argo CD's check calls a suspended CronJob Healthy (so it holds no application back)
    check(raw(k8s.batch.read_namespaced_cron_job, "off", ns), HEALTHY, "CronJob is Suspended")
    check(raw(k8s.batch.read_namespaced_cron_job, "yearly", ns), HEALTHY,
          "CronJob has not been scheduled yet")


@on_cluster
def test_services_and_ingress(k8s, ns):
    def service(name, type_):
        return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                "spec": {"type": type_, "selector": {"app": "x"}, "ports": [{"port": 80}]}}

    raw(k8s.core.create_namespaced_service, ns, service("lb", "LoadBalancer"))
    raw(k8s.core.create_namespaced_service, ns, service("internal", "ClusterIP"))
    raw(k8s.net.create_namespaced_ingress, ns, {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
        "spec": {"defaultBackend": {"service": {"name": "internal", "port": {"number": 80}}}}})
    time.sleep(2)  # give controllers a chance; nothing here hands out addresses
    lb = raw(k8s.core.read_namespaced_service, "lb", ns)
    assert lb["spec"]["clusterIP"] and lb["spec"]["ports"][0]["nodePort"]  # allocated for real
    check(lb, PROGRESSING, "load balancer")
    check(raw(k8s.core.read_namespaced_service, "internal", ns), HEALTHY)
    check(raw(k8s.net.read_namespaced_ingress, "web", ns), PROGRESSING, "address")


@on_cluster
def test_pvc_pending_without_provisioner_and_bound_to_a_volume(k8s, ns):
    def claim(name, storage_class):
        return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
                "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": storage_class,
                         "resources": {"requests": {"storage": "1Gi"}}}}

    pv = f"{ns}-pv"
    k8s.core.create_persistent_volume({"metadata": {"name": pv}, "spec": {
        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
        "storageClassName": f"{ns}-manual", "hostPath": {"path": "/tmp/unused"}}})
    try:
        raw(k8s.core.create_namespaced_persistent_volume_claim, ns, claim("data", f"{ns}-manual"))
        raw(k8s.core.create_namespaced_persistent_volume_claim, ns, claim("orphan", "no-such"))
        settle(lambda: raw(k8s.core.read_namespaced_persistent_volume_claim, "data", ns), HEALTHY)
        orphan = raw(k8s.core.read_namespaced_persistent_volume_claim, "orphan", ns)
        assert orphan["status"]["phase"] == "Pending"
        check(orphan, PROGRESSING, "Waiting for the claim to be bound")
    finally:
        k8s.core.delete_persistent_volume(pv)


@on_cluster
def test_namespace_active_then_terminating_with_its_contents(k8s, ns):
    check(raw(k8s.core.read_namespace, ns), HEALTHY)

    # A ConfigMap with a finalizer holds its namespace in Terminating.
    doomed = _create_namespace(k8s)
    raw(k8s.core.create_namespaced_config_map, doomed, {"metadata": {
        "name": "held", "finalizers": ["gitops-ui.test/hold"]}})
    k8s.core.delete_namespace(doomed)
    namespace = raw(k8s.core.read_namespace, doomed)
    assert namespace["status"]["phase"] == "Terminating"
    check(namespace, PROGRESSING, "Pending deletion")
    read_cm = lambda: raw(k8s.core.read_namespaced_config_map, "held", doomed)  # noqa: E731
    settle(read_cm, PROGRESSING, 30)
    assert read_cm()["metadata"]["deletionTimestamp"]
    check(read_cm(), PROGRESSING, "Pending deletion")

    from kubernetes.client import ApiException

    k8s.core.patch_namespaced_config_map("held", doomed, {"metadata": {"finalizers": None}})

    def read_or_none():
        try:
            return raw(k8s.core.read_namespace, doomed)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
    settle(read_or_none, MISSING, 60)


# HorizontalPodAutoscalers and APIServices on the cluster: test_health_argo.py.
