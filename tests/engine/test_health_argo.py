"""assess() reports what Argo CD reports, on objects read back from the real API server.

Each test creates the object on the local control plane; where no controller there produces the
state (no load balancer, no kubelet crashing a container), the test writes the status through
the status subresource, as such a controller would, and judges what the API server answers.
Pods whose status is written by hand are bound to a node no kubelet (or KWOK) serves, so nothing
else rewrites them during the test.
"""
from __future__ import annotations

import pytest

from apps.engine.health import DEGRADED, HEALTHY, PROGRESSING, SUSPENDED, assess
from tests.engine.test_health import (check, deployment, k8s, ns, on_cluster, poll,  # noqa: F401
                                      raw, settle)

NO_KUBELET = "health-node-without-kubelet"  # no Node object: nothing runs or rewrites its pods
T0, T1 = "2026-11-26T21:38:36Z", "2026-11-26T21:40:01Z"


def cond(type_, status, reason="", message=""):
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": T0}


# === Service and Ingress: any load balancer entry counts ========================================
@on_cluster
def test_load_balancer_entry_without_ip_or_hostname_makes_a_service_healthy(k8s, ns):
    raw(k8s.core.create_namespaced_service, ns, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "x"}, "ports": [{"port": 80}]}})
    check(raw(k8s.core.read_namespaced_service, "lb", ns), PROGRESSING,
          "Waiting for a load balancer")

    # what a controller publishing only ports writes first
    raw(k8s.core.patch_namespaced_service_status, "lb", ns, {"status": {"loadBalancer": {
        "ingress": [{"ports": [{"port": 80, "protocol": "TCP"}]}]}}})
    obj = raw(k8s.core.read_namespaced_service, "lb", ns)
    [entry] = obj["status"]["loadBalancer"]["ingress"]
    assert "ip" not in entry and "hostname" not in entry
    check(obj, HEALTHY)

    raw(k8s.core.patch_namespaced_service_status, "lb", ns,
        {"status": {"loadBalancer": {"ingress": None}}})
    check(raw(k8s.core.read_namespaced_service, "lb", ns), PROGRESSING)


@on_cluster
def test_ingress_entry_without_ip_or_hostname_makes_an_ingress_healthy(k8s, ns):
    raw(k8s.net.create_namespaced_ingress, ns, {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
        "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}})
    check(raw(k8s.net.read_namespaced_ingress, "web", ns), PROGRESSING, "address")

    raw(k8s.net.patch_namespaced_ingress_status, "web", ns, {"status": {"loadBalancer": {
        "ingress": [{"ports": [{"port": 443, "protocol": "TCP"}]}]}}})
    obj = raw(k8s.net.read_namespaced_ingress, "web", ns)
    [entry] = obj["status"]["loadBalancer"]["ingress"]
    assert "ip" not in entry and "hostname" not in entry
    check(obj, HEALTHY)


# === HorizontalPodAutoscaler =====================================================================
def hpa_body(api_version: str, name: str, target: str) -> dict:
    spec = {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": 1, "maxReplicas": 3}
    if api_version == "autoscaling/v1":
        spec["targetCPUUtilizationPercentage"] = 50
    else:
        spec["metrics"] = [{"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": 50}}}]
    return {"apiVersion": api_version, "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name}, "spec": spec}


@pytest.fixture
def autoscaling_v1(kube):
    from kubernetes import client

    return client.AutoscalingV1Api(kube.api_client())


@on_cluster
def test_v1_hpa_without_conditions_is_waiting_to_autoscale(k8s, ns, autoscaling_v1):
    raw(k8s.apps.create_namespaced_deployment, ns, deployment("app", 1))
    created = raw(autoscaling_v1.create_namespaced_horizontal_pod_autoscaler, ns,
                  hpa_body("autoscaling/v1", "app", "app"))
    # the server's answer: v1 shape, no conditions annotation yet, current == desired (0 == 0)
    assert "autoscaling.alpha.kubernetes.io/conditions" not in (
        created["metadata"].get("annotations") or {})
    assert created["status"].get("currentReplicas", 0) == created["status"]["desiredReplicas"]
    check(created, PROGRESSING, "Waiting to Autoscale")


@on_cluster
def test_v1_hpa_is_judged_from_its_conditions_annotation(k8s, ns, autoscaling_v1):
    # The real HPA controller on a cluster without a metrics API: FailedGetResourceMetric.
    raw(k8s.apps.create_namespaced_deployment, ns, deployment("app", 1))
    raw(autoscaling_v1.create_namespaced_horizontal_pod_autoscaler, ns,
        hpa_body("autoscaling/v1", "app", "app"))
    seen, obj = settle(lambda: raw(autoscaling_v1.read_namespaced_horizontal_pod_autoscaler,
                                   "app", ns), DEGRADED, 45)
    assert obj["apiVersion"] == "autoscaling/v1" and "conditions" not in obj["status"]
    assert "FailedGetResourceMetric" in obj["metadata"]["annotations"][
        "autoscaling.alpha.kubernetes.io/conditions"]
    assert "unable to get metrics" in seen[-1].message


@on_cluster
def test_hpa_on_a_target_scaled_to_zero_is_healthy_not_suspended(k8s, ns, autoscaling_v1):
    raw(k8s.apps.create_namespaced_deployment, ns, deployment("idle", 0))
    raw(k8s.autoscaling.create_namespaced_horizontal_pod_autoscaler, ns,
        hpa_body("autoscaling/v2", "idle", "idle"))
    read = lambda: raw(k8s.autoscaling.read_namespaced_horizontal_pod_autoscaler,  # noqa: E731
                       "idle", ns)
    obj = poll(read, lambda o: any(c["type"] == "ScalingActive"
                                   for c in o["status"].get("conditions") or []), 45)
    active = next(c for c in obj["status"]["conditions"] if c["type"] == "ScalingActive")
    assert (active["status"], active["reason"]) == ("False", "ScalingDisabled")
    check(obj, HEALTHY, "able to get the target's current scale")
    # the same object read as autoscaling/v1 (conditions in the annotation) agrees
    check(raw(autoscaling_v1.read_namespaced_horizontal_pod_autoscaler, "idle", ns), HEALTHY)


@on_cluster
def test_hpa_that_cannot_get_its_target_is_degraded(k8s, ns):
    raw(k8s.autoscaling.create_namespaced_horizontal_pod_autoscaler, ns,
        hpa_body("autoscaling/v2", "lost", "no-such-deployment"))
    seen, obj = settle(lambda: raw(k8s.autoscaling.read_namespaced_horizontal_pod_autoscaler,
                                   "lost", ns), DEGRADED, 45)
    able = next(c for c in obj["status"]["conditions"] if c["type"] == "AbleToScale")
    assert (able["status"], able["reason"]) == ("False", "FailedGetScale")
    assert "no-such-deployment" in seen[-1].message


@on_cluster
def test_v2_hpa_still_working_toward_its_target_is_progressing(k8s, ns):
    raw(k8s.apps.create_namespaced_deployment, ns, deployment("app", 1))
    raw(k8s.autoscaling.create_namespaced_horizontal_pod_autoscaler, ns,
        hpa_body("autoscaling/v2", "app", "app"))
    # metrics read fine, within range, but not yet able to scale: the status as the server keeps
    # it (the answer to the write; the controller rewrites it only on its next 15 s pass)
    written = raw(k8s.autoscaling.patch_namespaced_horizontal_pod_autoscaler_status, "app", ns,
                  {"status": {"currentReplicas": 1, "desiredReplicas": 1, "conditions": [
                      cond("ScalingActive", "True", "ValidMetricFound", "the HPA was able to "
                           "successfully calculate a replica count from cpu resource utilization"),
                      cond("ScalingLimited", "False", "DesiredWithinRange",
                           "the desired count is within the acceptable range")]}})
    assert [c["type"] for c in written["status"]["conditions"]] == ["ScalingActive",
                                                                     "ScalingLimited"]
    check(written, PROGRESSING, "Waiting to Autoscale")

    # AbleToScale=False for a reason that is not a failure is still on its way, too
    written = raw(k8s.autoscaling.patch_namespaced_horizontal_pod_autoscaler_status, "app", ns,
                  {"status": {"conditions": [cond(
                      "AbleToScale", "False", "BackoffBoth",
                      "the time since the previous scale is still within both the downscale "
                      "and upscale forbidden windows")]}})
    check(written, PROGRESSING, "Waiting to Autoscale")


# === APIService =================================================================================
@on_cluster
def test_apiservice_not_available_is_progressing(k8s, ns):
    check(raw(k8s.registration.read_api_service, "v1.apps"), HEALTHY, "Local")
    group = f"{ns}.example.com"
    name = f"v1alpha1.{group}"
    created = raw(k8s.registration.create_api_service, {
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": name}, "spec": {
            "group": group, "version": "v1alpha1", "groupPriorityMinimum": 1000,
            "versionPriority": 15, "insecureSkipTLSVerify": True,
            "service": {"namespace": ns, "name": "no-such-service", "port": 443}}})
    try:  # an unavailable APIService disturbs discovery for everyone: remove it right away
        check(created, PROGRESSING, "Waiting to be processed")
        obj = poll(lambda: raw(k8s.registration.read_api_service, name),
                   lambda o: o.get("status", {}).get("conditions"), 30)
        check(obj, PROGRESSING, "ServiceNotFound: service/no-such-service")
    finally:
        k8s.registration.delete_api_service(name)


# === Pods =======================================================================================
def make_pod(k8s, ns, name, restart_policy="Always", annotations=None, status=None) -> dict:
    """A Pod bound to a node nothing serves, with `status` written as a kubelet would; returns
    the Pod as read back."""
    raw(k8s.core.create_namespaced_pod, ns, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {"nodeName": NO_KUBELET, "restartPolicy": restart_policy,
                 "containers": [{"name": "c", "image": "registry.example/app:1"}]}})
    if status:
        raw(k8s.core.patch_namespaced_pod_status, name, ns, {"status": status})
    return raw(k8s.core.read_namespaced_pod, name, ns)


def pod_conditions(ready: bool) -> list[dict]:
    value = "True" if ready else "False"
    return [cond("Initialized", "True"), cond("Ready", value), cond("ContainersReady", value),
            cond("PodScheduled", "True")]


def container(ready=False, restarts=0, **states) -> dict:
    return {"name": "c", "image": "registry.example/app:1", "imageID": "", "ready": ready,
            "restartCount": restarts, "state": states.get("state", {}),
            "lastState": states.get("last", {})}


RUNNING = {"running": {"startedAt": T1}}
CRASHED = {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": T0, "finishedAt": T1}}


def running(ready=False, **states) -> dict:
    return {"phase": "Running", "startTime": T0, "conditions": pod_conditions(ready),
            "containerStatuses": [container(ready=ready, **states)]}


@on_cluster
def test_running_pod_not_ready_after_its_container_crashed_is_degraded(k8s, ns):
    obj = make_pod(k8s, ns, "flaky", status=running(restarts=1, state=RUNNING, last=CRASHED))
    assert obj["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 1
    check(obj, DEGRADED)
    # the same Pod once ready again is Healthy (a past crash alone is not a failure)
    raw(k8s.core.patch_namespaced_pod_status, "flaky", ns, {"status": running(
        ready=True, restarts=1, state=RUNNING, last=CRASHED)})
    check(raw(k8s.core.read_namespaced_pod, "flaky", ns), HEALTHY)


@on_cluster
def test_running_pod_not_ready_without_a_crash_is_progressing(k8s, ns):
    check(make_pod(k8s, ns, "starting", status=running(state=RUNNING)), PROGRESSING)


@pytest.mark.parametrize("policy", ["OnFailure", "Never"])
@on_cluster
def test_pod_running_to_completion_is_progressing_whatever_its_containers_went_through(
        k8s, ns, policy):
    obj = make_pod(k8s, ns, "task", policy, status=running(restarts=1, state=RUNNING,
                                                           last=CRASHED))
    check(obj, PROGRESSING)
    if policy == "OnFailure":  # a container of such a pod waiting in a back-off
        raw(k8s.core.patch_namespaced_pod_status, "task", ns, {"status": running(
            restarts=2, last=CRASHED, state={"waiting": {
                "reason": "CrashLoopBackOff", "message": "back-off 20s restarting failed"}})})
        check(raw(k8s.core.read_namespaced_pod, "task", ns), PROGRESSING)


@pytest.mark.parametrize("phase, waiting, message", [
    ("Running", {"reason": "CrashLoopBackOff",
                 "message": "back-off 2m40s restarting failed container=c pod=p"},
     "back-off 2m40s restarting failed container=c pod=p"),
    ("Pending", {"reason": "ImagePullBackOff",
                 "message": 'Back-off pulling image "registry.example/app:1"'},
     'Back-off pulling image "registry.example/app:1"'),
    ("Pending", {"reason": "ErrImagePull", "message": "manifest unknown"}, "manifest unknown"),
    ("Pending", {"reason": "CreateContainerConfigError",
                 "message": 'secret "db" not found'}, 'secret "db" not found'),
])
@on_cluster
def test_long_running_pod_stuck_waiting_is_degraded_with_the_kubelets_message(
        k8s, ns, phase, waiting, message):
    obj = make_pod(k8s, ns, "stuck", status={
        "phase": phase, "conditions": pod_conditions(False),
        "containerStatuses": [container(state={"waiting": waiting}, last=CRASHED)]})
    check(obj, DEGRADED, message)


@on_cluster
def test_hook_pod_with_a_pull_error_is_not_failed_early(k8s, ns):
    obj = make_pod(k8s, ns, "migrate", "Never", {"argocd.argoproj.io/hook": "PreSync"}, {
        "phase": "Pending", "conditions": pod_conditions(False), "containerStatuses": [
            container(state={"waiting": {"reason": "ImagePullBackOff", "message": "back-off"}})]})
    check(obj, PROGRESSING)


@on_cluster
def test_pod_waiting_to_create_its_container_is_progressing(k8s, ns):
    obj = make_pod(k8s, ns, "new", status={
        "phase": "Pending", "conditions": pod_conditions(False),
        "containerStatuses": [container(state={"waiting": {"reason": "ContainerCreating"}})]})
    check(obj, PROGRESSING)


@pytest.mark.parametrize("terminated, message", [
    ({"exitCode": 2, "reason": "Error"}, 'container "c" failed with exit code 2'),
    ({"exitCode": 137, "reason": "OOMKilled"}, "OOMKilled"),
    ({"exitCode": 1, "reason": "Error", "message": "config file missing"}, "config file missing"),
])
@on_cluster
def test_failed_pod_is_degraded_with_its_containers_reason(k8s, ns, terminated, message):
    obj = make_pod(k8s, ns, "job", "Never", status={
        "phase": "Failed", "conditions": pod_conditions(False), "containerStatuses": [
            container(state={"terminated": {**terminated, "startedAt": T0, "finishedAt": T1}})]})
    check(obj, DEGRADED, message)
    assert assess(obj).message == message


@on_cluster
def test_failed_pod_message_wins_and_succeeded_pod_is_healthy(k8s, ns):
    evicted = make_pod(k8s, ns, "evicted", status={
        "phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."})
    check(evicted, DEGRADED, "The node was low on resource: memory.")
    done = make_pod(k8s, ns, "done", "Never", status={"phase": "Succeeded", "containerStatuses": [
        container(state={"terminated": {"exitCode": 0, "reason": "Completed",
                                        "startedAt": T0, "finishedAt": T1}})]})
    check(done, HEALTHY)


@on_cluster
def test_ignore_restart_policy_annotation_judges_a_pod_as_long_running(k8s, ns):
    ignore = {"argocd.argoproj.io/ignore-restart-policy": "true"}
    check(make_pod(k8s, ns, "tool", "Never", ignore, running(ready=True, state=RUNNING)), HEALTHY)
    check(make_pod(k8s, ns, "tool-stuck", "Never", ignore, {
        "phase": "Pending", "containerStatuses": [container(state={"waiting": {
            "reason": "ImagePullBackOff", "message": "back-off"}})]}), DEGRADED, "back-off")
    # not honoured on a hook, whose end is what the sync waits for
    hook = {**ignore, "argocd.argoproj.io/hook": "PostSync"}
    check(make_pod(k8s, ns, "hook", "Never", hook, running(ready=True, state=RUNNING)),
          PROGRESSING)


# === Jobs and CronJobs ==========================================================================
@on_cluster
def test_job_whose_pod_failed_past_its_backoff_limit_is_degraded(k8s, ns):
    raw(k8s.batch.create_namespaced_job, ns, {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never", "nodeSelector": {"gitops-ui/none": "x"},
            "containers": [{"name": "c", "image": "busybox"}]}}}})
    pod = poll(lambda: raw(k8s.core.list_namespaced_pod, ns, label_selector="job-name=once"),
               lambda pods: pods["items"])["items"][0]
    # the kubelet's report of a failed container (the pod never ran: nothing schedules it)
    raw(k8s.core.patch_namespaced_pod_status, pod["metadata"]["name"], ns, {"status": {
        "phase": "Failed", "containerStatuses": [container(state={"terminated": {
            "exitCode": 3, "reason": "Error", "startedAt": T0, "finishedAt": T1}})]}})
    seen, obj = settle(lambda: raw(k8s.batch.read_namespaced_job, "once", ns), DEGRADED, 30)
    assert seen[0].status == PROGRESSING
    assert "backoff limit" in seen[-1].message


@on_cluster
def test_suspended_job_is_suspended_once_the_controller_says_so(k8s, ns):
    created = raw(k8s.batch.create_namespaced_job, ns, {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "held"},
        "spec": {"suspend": True, "template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}})
    check(created, PROGRESSING)  # no Suspended condition yet
    seen, _ = settle(lambda: raw(k8s.batch.read_namespaced_job, "held", ns), SUSPENDED)
    assert seen[-1].message == "Job suspended"


def cronjob_body(name, suspend=False) -> dict:
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
            "spec": {"schedule": "0 0 1 1 *", "suspend": suspend, "jobTemplate": {"spec": {
                "template": {"spec": {"restartPolicy": "Never", "containers": [
                    {"name": "c", "image": "busybox"}]}}}}}}


@on_cluster
def test_suspended_cronjob_is_healthy_as_in_argo_cd(k8s, ns):
    raw(k8s.batch.create_namespaced_cron_job, ns, cronjob_body("off", suspend=True))
    check(raw(k8s.batch.read_namespaced_cron_job, "off", ns), HEALTHY, "CronJob is Suspended")


@pytest.mark.parametrize("status, health, message", [
    ({}, HEALTHY, "CronJob has not been scheduled yet"),
    ({"lastScheduleTime": T0}, HEALTHY, "never completed successfully"),
    ({"lastScheduleTime": T1, "lastSuccessfulTime": T0, "active": [
        {"kind": "Job", "apiVersion": "batch/v1", "name": "yearly-1", "namespace": "x"}]},
     HEALTHY, "The job is running"),
    ({"lastScheduleTime": T1, "lastSuccessfulTime": T0}, DEGRADED,
     "CronJob has not completed its last execution successfully"),
    ({"lastScheduleTime": T0, "lastSuccessfulTime": T1}, HEALTHY,
     "CronJob has completed its last execution successfully"),
])
@on_cluster
def test_cronjob_is_judged_by_its_last_run(k8s, ns, status, health, message):
    raw(k8s.batch.create_namespaced_cron_job, ns, cronjob_body("yearly"))
    if status:  # the status as the CronJob controller writes it (the answer to the write)
        if "active" in status:
            status["active"][0]["namespace"] = ns
        obj = raw(k8s.batch.patch_namespaced_cron_job_status, "yearly", ns, {"status": status})
    else:
        obj = raw(k8s.batch.read_namespaced_cron_job, "yearly", ns)
    check(obj, health, message)


# === Argo CD's bundled checks for CustomResourceDefinition and PodDisruptionBudget ==============
@on_cluster
def test_custom_resource_definition_is_healthy_once_established(kube, ns):
    from kubernetes import client

    api = client.ApiextensionsV1Api(kube.api_client())
    group = f"{ns}.example.com"
    created = raw(api.create_custom_resource_definition, {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                     "openAPIV3Schema": {"type": "object"}}}]}})
    try:
        check(created, PROGRESSING, "Status conditions not found")
        settle(lambda: raw(api.read_custom_resource_definition, f"widgets.{group}"), HEALTHY)
        check(raw(api.read_custom_resource_definition, f"widgets.{group}"), HEALTHY,
              "CRD is healthy")
    finally:
        api.delete_custom_resource_definition(f"widgets.{group}")


@on_cluster
def test_pod_disruption_budget_is_healthy_with_sufficient_or_missing_pods(kube, k8s, ns):
    from kubernetes import client

    api = client.PolicyV1Api(kube.api_client())
    raw(k8s.apps.create_namespaced_deployment, ns, deployment("web", 2))
    settle(lambda: raw(k8s.apps.read_namespaced_deployment, "web", ns), HEALTHY)

    def budget(name, app, min_available):
        return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                "metadata": {"name": name}, "spec": {"minAvailable": min_available,
                                                     "selector": {"matchLabels": {"app": app}}}}

    raw(api.create_namespaced_pod_disruption_budget, ns, budget("ok", "web", 1))
    raw(api.create_namespaced_pod_disruption_budget, ns, budget("none", "nothing", 1))
    seen, _ = settle(lambda: raw(api.read_namespaced_pod_disruption_budget, "ok", ns), HEALTHY)
    assert seen[-1].message == "PodDisruptionBudget has SufficientPods"
    seen, _ = settle(lambda: raw(api.read_namespaced_pod_disruption_budget, "none", ns), HEALTHY)
    assert seen[-1].message == "PodDisruptionBudget has InsufficientPods"
