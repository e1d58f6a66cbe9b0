"""Smoke tests of the real registry, Git server and buildah of the local stack.

They prove each part does what the app's tests will lean on: the registry enforces auth, the Git
server takes authenticated pushes and refuses bad credentials, and buildah builds FROM the
registry's base image and pushes an image whose layer really holds what the RUN step wrote.
No Django database is used.
"""
from __future__ import annotations

import io
import tarfile

import requests

from tests.gitcli import git

MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])




def test_registry_requires_credentials(registry):
    anonymous = requests.get(f"{registry.url}/v2/_catalog", timeout=10)
    assert anonymous.status_code == 401
    assert "Basic" in anonymous.headers.get("WWW-Authenticate", "")

    wrong = requests.get(f"{registry.url}/v2/_catalog", auth=(registry.username, "wrong"),
                         timeout=10)
    assert wrong.status_code == 401

    ok = requests.get(f"{registry.url}/v2/_catalog", auth=(registry.username, registry.password),
                      timeout=10)
    assert ok.status_code == 200
    assert "repositories" in ok.json()


def test_git_push_and_ls_remote(git_server, tmp_path):
    url = git_server.create_repo("smoke/app")
    assert git_server.password not in url

    git("clone", git_server.auth_url("smoke/app"), "work", cwd=tmp_path)
    work = tmp_path / "work"
    (work / "deploy.yaml").write_text("image: example:1.0\n")
    git("add", "deploy.yaml", cwd=work)
    git("commit", "-m", "first", cwd=work)
    git("push", "origin", "HEAD:main", cwd=work)
    head = git("rev-parse", "HEAD", cwd=work).stdout.strip()

    remote = git("ls-remote", git_server.auth_url("smoke/app"), cwd=tmp_path).stdout
    assert f"{head}\trefs/heads/main" in remote

    # Anonymous access is refused too, not only a wrong password.
    assert git("ls-remote", url, cwd=tmp_path, check=False).returncode != 0

    bad_url = git_server.auth_url("smoke/app").replace(git_server.password, "not-the-password")
    (work / "deploy.yaml").write_text("image: example:2.0\n")
    git("commit", "-am", "second", cwd=work)
    refused = git("push", bad_url, "HEAD:main", cwd=work, check=False)
    assert refused.returncode != 0
    assert "Authentication failed" in refused.stderr
    # ...and the branch did not move.
    assert f"{head}\trefs/heads/main" in git("ls-remote", git_server.auth_url("smoke/app"),
                                              cwd=tmp_path).stdout


def test_buildah_build_push_and_read_layer(buildah, registry, tmp_path):
    (tmp_path / "Dockerfile").write_text(
        f"FROM {buildah.base_image}\nRUN echo hello > /greeting\n")
    image_id = buildah.build(tmp_path, "smoke/hello:1")
    assert image_id

    digest = buildah.push("smoke/hello:1", f"{registry.host}/smoke/hello:1")
    assert digest.startswith("sha256:")

    auth = (registry.username, registry.password)
    manifest = requests.get(f"{registry.url}/v2/smoke/hello/manifests/{digest}", auth=auth,
                            headers={"Accept": MANIFEST_TYPES}, timeout=30)
    assert manifest.status_code == 200, manifest.text
    assert manifest.headers["Docker-Content-Digest"] == digest
    layers = manifest.json()["layers"]
    assert len(layers) >= 2  # busybox base + the RUN step

    blob = requests.get(f"{registry.url}/v2/smoke/hello/blobs/{layers[-1]['digest']}",
                        auth=auth, timeout=30)
    assert blob.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(blob.content), mode="r:gz") as layer:
        member = next(m for m in layer.getmembers() if m.name.lstrip("./") == "greeting")
        assert layer.extractfile(member).read().decode().strip() == "hello"
