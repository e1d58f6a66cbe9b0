"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and KWOK, from binaries built by tools/cluster/build.sh.

KWOK plays the kubelets: it keeps fake Nodes Ready and moves scheduled Pods to Running/Ready
(and Job pods to Succeeded), so Deployments roll out and Jobs complete as on a real cluster,
without containers. Everything else (admission, defaulting, server-side apply, controllers,
garbage collection, RBAC) is the real Kubernetes code.
"""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import requests

from . import Component
from .process import ManagedProcess, StackError, free_port, run, wait_for

REPO = Path(__file__).resolve().parents[2]
NODE_ANNOTATION = "kwok.x-k8s.io/node"
NODE_COUNT = 3
# If pytest dies, its throwaway control plane is killed outright: on SIGTERM the API server
# shuts down gracefully for 20 s or more, and can hang once etcd has gone first.
KILL = signal.SIGKILL


def controller_limits() -> list[str]:
    """The controller-manager's client limits: its defaults (20 requests/s per controller),
    unless GITOPS_UI_TEST_CONTROLLER_QPS says otherwise (the bench's --controller-qps: those
    limits, not any tool, are what a first sync of 1,000 Deployments waits for)."""
    qps = os.environ.get("GITOPS_UI_TEST_CONTROLLER_QPS")
    return [f"--kube-api-qps={int(qps)}", f"--kube-api-burst={2 * int(qps)}"] if qps else []


def cluster_bin_dir() -> Path:
    """The bin folder of the built control plane (built on first use, ~8 min cold, then cached)."""
    result = subprocess.run([str(REPO / "tools/cluster/build.sh")], capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(f"building the Kubernetes control plane failed:\n{result.stderr[-3000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


class ControlPlane(Component):
    name = "kube"

    def start(self) -> None:
        self.bin = cluster_bin_dir()
        self.pki = self.workdir / "pki"
        self._make_certificates()
        self._start_etcd()
        self._start_apiserver()
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.kubeconfig.write_text(self.kubeconfig_text())
        self._start_controllers()
        self._create_nodes()
        # Pods cannot be created in a namespace until its default ServiceAccount exists.
        wait_for(self._default_service_account_exists, 60, "the default ServiceAccount")

    # --- certificates -------------------------------------------------------------------------
    def _make_certificates(self) -> None:
        pki = self.pki
        pki.mkdir(exist_ok=True)

        def ssl(*args, what):
            run(["openssl", *args], what, cwd=pki)

        ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", "ca.key",
            "-out", "ca.crt", "-subj", "/CN=gitops-ui-test-ca", what="CA certificate")
        ssl("genrsa", "-out", "sa.key", "2048", what="service-account key")
        ssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", what="service-account public key")
        self._signed_cert("apiserver", "/CN=kube-apiserver",
                          "subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,"
                          "DNS:kubernetes,DNS:kubernetes.default.svc")
        self._signed_cert("admin", "/O=system:masters/CN=admin", None)

    def _signed_cert(self, name: str, subject: str, san: str | None) -> None:
        run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.csr", "-subj", subject], f"{name} key", cwd=self.pki)
        args = ["openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey",
                "ca.key", "-CAcreateserial", "-days", "2", "-out", f"{name}.crt"]
        if san:
            (self.pki / f"{name}.ext").write_text(san + "\n")
            args += ["-extfile", f"{name}.ext"]
        run(args, f"{name} certificate", cwd=self.pki)

    # --- processes ----------------------------------------------------------------------------
    def _start_etcd(self) -> None:
        self.etcd_port, peer = free_port(), free_port()
        url = f"http://127.0.0.1:{self.etcd_port}"
        proc = ManagedProcess("etcd", [
            self.bin / "etcd", "--data-dir", self.workdir / "etcd", "--name", "etcd",
            "--listen-client-urls", url, "--advertise-client-urls", url,
            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"etcd=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync", "--log-level", "warn"], self.log_dir, death_signal=KILL)
        self.processes.append(proc.start())
        proc.wait_until(lambda: requests.get(f"{url}/health", timeout=1).ok, 30, "etcd healthy")

    def _start_apiserver(self) -> None:
        self.port = free_port()
        pki = self.pki
        proc = ManagedProcess("kube-apiserver", [
            self.bin / "kube-apiserver",
            "--etcd-servers", f"http://127.0.0.1:{self.etcd_port}",
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
            "--secure-port", self.port,
            "--tls-cert-file", pki / "apiserver.crt", "--tls-private-key-file", pki / "apiserver.key",
            "--client-ca-file", pki / "ca.crt",
            "--service-account-issuer", "https://kubernetes.default.svc",
            "--service-account-key-file", pki / "sa.pub",
            "--service-account-signing-key-file", pki / "sa.key",
            "--service-cluster-ip-range", "10.0.0.0/16",
            "--authorization-mode", "RBAC", "--allow-privileged",
            "--endpoint-reconciler-type", "none"], self.log_dir, death_signal=KILL)
        self.processes.append(proc.start())
        proc.wait_until(self._apiserver_ready, 90, "kube-apiserver /readyz")

    def _apiserver_ready(self) -> bool:
        return requests.get(f"{self.url}/readyz", verify=str(self.pki / "ca.crt"), timeout=2,
                            cert=(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))).ok

    def _start_controllers(self) -> None:
        kc = self.kubeconfig
        auth = ["--kubeconfig", kc, "--authentication-kubeconfig", kc,
                "--authorization-kubeconfig", kc, "--bind-address", "127.0.0.1",
                "--leader-elect=false"]
        cm = ManagedProcess("kube-controller-manager", [
            self.bin / "kube-controller-manager", *auth, "--secure-port", free_port(),
            "--service-account-private-key-file", self.pki / "sa.key",
            "--root-ca-file", self.pki / "ca.crt", "--use-service-account-credentials",
            "--cluster-signing-cert-file", self.pki / "ca.crt",
            "--cluster-signing-key-file", self.pki / "ca.key", *controller_limits()], self.log_dir,
            death_signal=KILL)
        scheduler = ManagedProcess("kube-scheduler", [
            self.bin / "kube-scheduler", *auth, "--secure-port", free_port()], self.log_dir,
            death_signal=KILL)
        kwok = ManagedProcess("kwok", [
            self.bin / "kwok", "--kubeconfig", kc, "--config", self.bin.parent / "kwok-stages.yaml",
            "--manage-all-nodes=false",
            # The "fast" stages expect KWOK to renew node Leases; without them the node
            # controller marks every node NotReady about once a minute.
            "--node-lease-duration-seconds", "40",
            f"--manage-nodes-with-annotation-selector={NODE_ANNOTATION}=fake",
            "--server-address", f"127.0.0.1:{free_port()}"], self.log_dir, death_signal=KILL)
        for proc in (cm, scheduler, kwok):
            self.processes.append(proc.start())

    def _create_nodes(self) -> None:
        from kubernetes import client

        core = client.CoreV1Api(self.api_client())
        for i in range(NODE_COUNT):
            name = f"kwok-node-{i}"
            core.create_node({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "annotations": {NODE_ANNOTATION: "fake"},
                             "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                        "kubernetes.io/arch": "amd64", "type": "kwok"}},
                # Room for make bench's 1,000 applications (a pod each) on the 5 nodes; a
                # real node's default of 110 would leave half of them Pending.
                "status": {"capacity": {"cpu": "32", "memory": "256Gi", "pods": "1000"},
                           "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "1000"}},
            })

        def nodes_ready():
            nodes = core.list_node().items
            return len(nodes) == NODE_COUNT and all(
                any(c.type == "Ready" and c.status == "True" for c in (n.status.conditions or []))
                for n in nodes)
        try:
            wait_for(nodes_ready, 60, "KWOK nodes Ready")
        except StackError as exc:
            raise StackError(f"{exc}\n{self.processes[-1].log}") from exc

    def _default_service_account_exists(self) -> bool:
        from kubernetes import client

        client.CoreV1Api(self.api_client()).read_namespaced_service_account("default", "default")
        return True

    # --- how to reach it ----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def kubeconfig_text(self, context: str = "local") -> str:
        """A kubeconfig (YAML) for the cluster admin, with the certificates inlined."""
        import base64

        import yaml

        def b64(name):
            return base64.b64encode((self.pki / name).read_bytes()).decode()

        return yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": context, "cluster": {
                "server": self.url, "certificate-authority-data": b64("ca.crt")}}],
            "users": [{"name": "admin", "user": {
                "client-certificate-data": b64("admin.crt"), "client-key-data": b64("admin.key")}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": "admin"}}],
        })

    def api_client(self):
        """A kubernetes.client.ApiClient logged in as cluster admin."""
        from kubernetes import config

        return config.new_client_from_config(str(self.kubeconfig))

    def info(self) -> dict:
        return {"url": self.url, "kubeconfig": str(self.kubeconfig), "bin": str(self.bin)}
