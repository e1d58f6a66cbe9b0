"""Fixtures of the registry tests: images in the stack's real registry (copied from the busybox
base image with skopeo, in two manifest formats, so there are two digests), and the Harbor API
emulator (tests/localstack/harbor.py) in front of that registry."""
import json
import subprocess

import pytest

from tests.localstack.harbor import HarborEmulator

REPOSITORY = "regtest/busybox"
TAGS = ("1.0", "1.1", "2.0")
HARBOR_PROJECT = "team"


def skopeo(registry, *args) -> str:
    argv = ["skopeo", *args]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if result.returncode:
        raise AssertionError(f"skopeo {args[0]} failed: "
                             f"{result.stderr.replace(registry.password, '***')[-2000:]}")
    return result.stdout


def copy_image(registry, source: str, dest: str, fmt: str) -> None:
    creds = f"{registry.username}:{registry.password}"
    skopeo(registry, "copy", "--quiet", "--format", fmt, "--src-creds", creds, "--dest-creds",
           creds, "--src-tls-verify=false", "--dest-tls-verify=false", f"docker://{source}",
           f"docker://{registry.host}/{dest}")


@pytest.fixture(scope="session")
def images(buildah, registry):
    """regtest/busybox:1.0 and :1.1 (Docker v2 manifest), :2.0 (OCI manifest); team/web:1.0
    (Docker) and :2.0 (OCI), team/apps/api:1.0 for the Harbor project `team`. skopeo's digest
    of each."""
    plan = {f"{REPOSITORY}:1.0": "v2s2", f"{REPOSITORY}:1.1": "v2s2", f"{REPOSITORY}:2.0": "oci",
            f"{HARBOR_PROJECT}/web:1.0": "v2s2", f"{HARBOR_PROJECT}/web:2.0": "oci",
            f"{HARBOR_PROJECT}/apps/api:1.0": "oci"}
    digests = {}
    for dest, fmt in plan.items():
        copy_image(registry, buildah.base_image, dest, fmt)
        digests[dest] = skopeo_digest(registry, dest)
    return digests


def skopeo_digest(registry, ref: str) -> str:
    """The digest `skopeo inspect` reports for `ref` in the stack's registry."""
    out = skopeo(registry, "inspect", "--creds", f"{registry.username}:{registry.password}",
                 "--tls-verify=false", "--no-tags", f"docker://{registry.host}/{ref}")
    return json.loads(out)["Digest"]


@pytest.fixture
def harbor(registry):
    emulator = HarborEmulator(registry).start()
    yield emulator
    emulator.stop()
