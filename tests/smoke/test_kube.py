"""The local control plane behaves like a cluster: workloads roll out, Jobs finish, apply works."""
import time

import pytest
from kubernetes import client, dynamic

pytestmark = pytest.mark.timeout(900)  # the first run builds the control plane (~8 min cold)


def wait(predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_deployment_rolls_out_on_kwok_nodes(kube):
    api = kube.api_client()
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment("default", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}})

    def available():
        status = apps.read_namespaced_deployment_status("web", "default").status
        return status.available_replicas == 3

    assert wait(available), apps.read_namespaced_deployment_status("web", "default").status
    pods = client.CoreV1Api(api).list_namespaced_pod("default", label_selector="app=web").items
    assert {p.spec.node_name for p in pods} <= {"kwok-node-0", "kwok-node-1", "kwok-node-2"}
    assert all(p.status.phase == "Running" for p in pods)


def test_job_completes(kube):
    batch = client.BatchV1Api(kube.api_client())
    batch.create_namespaced_job("default", {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
                                       "containers": [{"name": "c", "image": "busybox"}]}}}})
    assert wait(lambda: (batch.read_namespaced_job_status("once", "default").status.succeeded or 0) >= 1)


def test_server_side_apply_dry_run_returns_defaults_and_creates_nothing(kube):
    dyn = dynamic.DynamicClient(kube.api_client())
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dry", "namespace": "default"},
            "data": {"k": "v"}}
    result = cms.server_side_apply(body=body, namespace="default", name="dry",
                                   field_manager="gitops-ui-test", dry_run="All")
    assert result.data.k == "v" and result.metadata.uid  # the server filled it in
    with pytest.raises(dynamic.exceptions.NotFoundError):
        cms.get(name="dry", namespace="default")
