"""A kubeconfig that would run a command, read a file of the server or redirect traffic is
refused with the field named, when it is entered (API, admin) and when a stored one is used;
nothing is executed, read or sent. On PostgreSQL; the "cluster" is a loopback socket that
records whatever reaches it."""
import base64
import json
import uuid

import pytest

from apps.clusters import services as clusters
from apps.clusters.models import Cluster
from apps.engine.errors import ClusterError

from .conftest import kubeconfig

pytestmark = pytest.mark.django_db

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _exec(marker, tmp_path, listener):
    ran = tmp_path / "exec-ran"
    credential = json.dumps({"apiVersion": "client.authentication.k8s.io/v1",
                             "kind": "ExecCredential", "status": {"token": marker}})
    return kubeconfig(listener.url, {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": "/bin/sh",
        "args": ["-c", f"touch {ran}; echo '{credential}'"], "interactiveMode": "Never"}})


def _auth_provider(marker, tmp_path, listener):
    return kubeconfig(listener.url, {"auth-provider": {"name": "oidc", "config": {
        "idp-issuer-url": listener.url, "client-id": "gitops", "client-secret": marker,
        "id-token": "a.b.c", "refresh-token": marker}}})


def _secret_file(tmp_path, marker, name):
    path = tmp_path / name
    path.write_text(marker)
    return str(path)


def _token_file(marker, tmp_path, listener):
    return kubeconfig(listener.url, {"tokenFile": _secret_file(tmp_path, marker, "token")})


def _client_key(marker, tmp_path, listener):
    return kubeconfig(listener.url, {
        "client-key": _secret_file(tmp_path, marker, "client.key"),
        "client-certificate-data": base64.b64encode(PEM.encode()).decode()})


def _certificate_authority(marker, tmp_path, listener):
    return kubeconfig(listener.url, {"token": "inline-token"},
                      {"certificate-authority": _secret_file(tmp_path, marker, "ca.crt")})


def _proxy(marker, tmp_path, listener):
    return kubeconfig("https://10.255.0.1:6443", {"token": marker}, {"proxy-url": listener.url})


CASES = {"exec": _exec, "auth-provider": _auth_provider, "tokenFile": _token_file,
         "client-key": _client_key, "certificate-authority": _certificate_authority,
         "proxy-url": _proxy}


@pytest.mark.parametrize("field", CASES)
def test_a_kubeconfig_that_would_run_read_or_redirect_is_refused_everywhere(
        admin_client, listener, tmp_path, field):
    marker = f"marker-{uuid.uuid4().hex}"
    text = CASES[field](marker, tmp_path, listener)
    named = f"`{field}`"

    api = admin_client.post("/api/clusters/", {"name": "evil-api", "auth": "kubeconfig",
                                               "kubeconfig": text},
                            content_type="application/json")
    assert api.status_code == 400, api.content
    assert named in api.json()["detail"] and "not allowed" in api.json()["detail"]

    admin = admin_client.post("/admin/clusters/cluster/add/", {
        "name": "evil-admin", "auth": "kubeconfig", "server": "", "token": "",
        "kubeconfig": text, "ca_data": ""})
    assert admin.status_code == 200  # the form again, with the error
    assert named in " ".join(admin.context["adminform"].form.errors["kubeconfig"])
    assert not Cluster.objects.filter(name__startswith="evil-").exists()

    # One stored before these rules existed is refused when used, not run.
    stored = Cluster.objects.create(name="evil-stored", auth="kubeconfig", kubeconfig=text)
    check = admin_client.post(f"/api/clusters/{stored.pk}/check")
    assert check.json()["connection_status"] == "Failed"
    assert named in check.json()["connection_message"]
    with pytest.raises(ClusterError, match=field):
        clusters.runtime(stored)

    for response in (api, admin, check):
        assert marker.encode() not in response.content
    assert not (tmp_path / "exec-ran").exists(), "the exec command ran"
    assert listener.connections == 0 and listener.received == b""


@pytest.mark.parametrize("text, message", [
    ("clusters: [", "not valid YAML at line 1"),
    ("- just a list", "not a YAML mapping"),
    (kubeconfig("https://127.0.0.1:6443", {"token": "t"}).replace("current-context: ctx",
                                                                  "current-context: gone"),
     "no context named 'gone'"),
    (kubeconfig("ftp://127.0.0.1", {"token": "t"}), "needs a `server` https:// URL"),
    (kubeconfig("https://127.0.0.1:6443", {"client-key-data": "not base64!"}),
     "`client-key-data` that is not base64"),
])
def test_an_unusable_kubeconfig_is_refused_with_its_cause(admin_client, text, message):
    response = admin_client.post("/api/clusters/", {"name": "broken", "auth": "kubeconfig",
                                                    "kubeconfig": text},
                                 content_type="application/json")
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert b"not base64!" not in response.content  # values are never echoed
