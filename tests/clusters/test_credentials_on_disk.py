"""Key material of a cluster stays in memory: a cluster registered with the stack's admin
kubeconfig (inline client certificate and key) or with a token and CA works, and neither this
process nor one that dies without cleaning up leaves the key or the CA in a file. On the real
API server and PostgreSQL."""
import base64
import gc
import os
import stat
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from apps.clusters import services as clusters
from apps.clusters.models import Cluster
from apps.engine.cluster import Cluster as EngineCluster

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]
TEMP = tempfile.gettempdir()


def regular_files(root: str, skip: Path) -> dict[str, tuple[int, int]]:
    """Every regular file under `root` except under `skip`: the test stack's own folder, where
    etcd stores the cluster's CA (every namespace has it in a ConfigMap) and the pki lives."""
    found = {}
    for folder, folders, names in os.walk(root):
        folders[:] = [f for f in folders if Path(folder, f) != skip]
        for name in names:
            path = os.path.join(folder, name)
            try:
                info = os.lstat(path)
            except OSError:  # other programs share the temp folder
                continue
            if stat.S_ISREG(info.st_mode):
                found[path] = (info.st_mtime_ns, info.st_size)
    return found


def new_or_changed(before: dict, after: dict) -> list[str]:
    return [path for path, seen in after.items() if before.get(path) != seen]


def holding(paths, needles: list[bytes]) -> list[str]:
    found = []
    for path in paths:
        try:
            if os.path.getsize(path) > 64 << 20:
                continue
            data = Path(path).read_bytes()
        except OSError:
            continue
        if any(needle in data for needle in needles):
            found.append(path)
    return found


def key_material(kube) -> list[bytes]:
    """Pieces of the admin key and the CA as they would appear in a PEM file or a kubeconfig."""
    needles = []
    for name in ("admin.key", "ca.crt"):
        pem = (kube.pki / name).read_bytes()
        needles.append(max(pem.splitlines(), key=len))  # a base64 line of the PEM body
        needles.append(base64.b64encode(pem)[20:84])  # a piece of its *-data form
    return needles


def memory_files() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("/memfd:gitops-ui")
        except OSError:
            pass
    return count


def test_a_kubeconfig_and_a_token_cluster_work_and_leave_no_key_on_disk(admin_client, kube,
                                                                       stack):
    needles = key_material(kube)
    assert holding([kube.pki / "admin.key"], needles)  # the search finds the key where it is
    before = regular_files(TEMP, stack.workdir)

    created = admin_client.post("/api/clusters/", {
        "name": "local-kc", "auth": "kubeconfig", "kubeconfig": kube.kubeconfig_text()},
        content_type="application/json")
    assert created.status_code == 201, created.content
    check = admin_client.post(f"/api/clusters/{created.json()['id']}/check").json()
    assert check["connection_status"] == "Successful", check
    assert check["server_version"].startswith("v1.")

    # The connection the workers use: discovery, server-side apply, read back.
    record = Cluster.objects.get(name="local-kc")
    engine = clusters.runtime(record).cluster
    name = f"creds-{uuid.uuid4().hex[:8]}"
    configmap = {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": name, "namespace": "default"}, "data": {"k": "v"}}
    engine.apply(configmap, "gitops-ui-test")
    assert engine.read(configmap)["data"] == {"k": "v"}
    engine.delete(engine.resource_of(configmap), "default", name)

    # A token with the CA as PEM: the path that used to write the CA into the temp folder.
    token = engine.request_json(
        "POST", "/api/v1/namespaces/default/serviceaccounts/default/token",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
              "spec": {"expirationSeconds": 600}})["status"]["token"]
    created = admin_client.post("/api/clusters/", {
        "name": "local-token", "auth": "token", "server": kube.url, "token": token,
        "ca_data": (kube.pki / "ca.crt").read_text()}, content_type="application/json")
    assert created.status_code == 201, created.content
    check = admin_client.post(f"/api/clusters/{created.json()['id']}/check").json()
    assert check["connection_status"] == "Successful", check

    clusters.forget(record.pk)
    gc.collect()
    leaked = holding(new_or_changed(before, regular_files(TEMP, stack.workdir)), needles)
    assert leaked == [], f"key material written to {leaked}"


def test_a_process_that_dies_after_using_a_cluster_leaves_no_key_behind(kube, stack, tmp_path):
    """RQ's work-horses end with os._exit: no atexit cleanup runs, as after a SIGKILL."""
    needles = key_material(kube)
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    before = regular_files(TEMP, stack.workdir)
    script = ("import os, sys\n"
              "from apps.engine.cluster import Cluster\n"
              "cluster = Cluster.from_kubeconfig(sys.stdin.read())\n"
              "print(cluster.version()['gitVersion'], flush=True)\n"
              "os._exit(0)\n")
    result = subprocess.run([sys.executable, "-c", script], input=kube.kubeconfig_text(),
                            env={**os.environ, "TMPDIR": str(private_tmp)}, cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("v1.")
    assert list(private_tmp.iterdir()) == []
    assert holding(new_or_changed(before, regular_files(TEMP, stack.workdir)), needles) == []


def test_in_memory_key_files_are_released_with_the_connection(listener):
    pem = (b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    start = memory_files()
    with EngineCluster.from_token(listener.url, "t", ca_pem=pem) as engine:
        assert memory_files() == start + 1
        assert engine.session.verify.startswith("/proc/self/fd/")
    assert memory_files() == start
    collected = EngineCluster.from_token(listener.url, "t", ca_pem=pem)
    assert memory_files() == start + 1
    del collected
    gc.collect()
    assert memory_files() == start
