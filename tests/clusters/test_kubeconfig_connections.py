"""Kubeconfigs with inline credentials connect to the real API server through the parsed
values alone: client certificates, a token, tls-server-name."""
import base64

import pytest
import yaml

from apps.engine.cluster import Cluster
from apps.engine.errors import ClusterError

from .conftest import kubeconfig


def admin_kubeconfig(kube, **cluster_fields) -> str:
    doc = yaml.safe_load(kube.kubeconfig_text())
    doc["clusters"][0]["cluster"].update(cluster_fields)
    return yaml.safe_dump(doc)


def test_tls_server_name_is_the_name_checked_against_the_certificate(kube):
    # The API server's certificate names 127.0.0.1 and `kubernetes`, not `elsewhere.example`.
    with Cluster.from_kubeconfig(admin_kubeconfig(kube, **{"tls-server-name": "kubernetes"})) as c:
        assert c.version()["gitVersion"].startswith("v1.")
    wrong = Cluster.from_kubeconfig(admin_kubeconfig(kube, **{"tls-server-name": "elsewhere.example"}))
    with wrong, pytest.raises(ClusterError, match="TLS handshake"):
        wrong.version()


def test_a_token_kubeconfig_connects_and_a_wrong_token_is_refused(kube):
    with Cluster.from_kubeconfig(kube.kubeconfig_text()) as admin:
        token = admin.request_json(
            "POST", "/api/v1/namespaces/default/serviceaccounts/default/token",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                  "spec": {"expirationSeconds": 600}})["status"]["token"]
    ca = {"certificate-authority-data": base64.b64encode((kube.pki / "ca.crt").read_bytes()).decode()}
    with Cluster.from_kubeconfig(kubeconfig(kube.url, {"token": token}, ca)) as cluster:
        assert cluster.version()["gitVersion"].startswith("v1.")
    with Cluster.from_kubeconfig(kubeconfig(kube.url, {"token": "not-a-token"}, ca)) as cluster:
        with pytest.raises(ClusterError, match="401"):
            cluster.discover()
