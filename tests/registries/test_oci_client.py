"""The OCI distribution client against the stack's real registry (docker-registry 2.8,
htpasswd basic auth): ping, tags page by page, manifests and digests as skopeo sees them, and
clear errors for refused credentials, a registry that is down and bad names."""
import socket

import pytest

from apps.registries.oci import (DIGEST, InvalidReference, NotFound, OCIClient, Unauthorized,
                                 Unreachable, ca_context)

from .conftest import REPOSITORY, TAGS


@pytest.fixture
def client(registry):
    with OCIClient(registry.url, registry.username, registry.password) as oci:
        yield oci


def urls_asked(oci) -> list[str]:
    asked = []
    oci.session.hooks["response"].append(lambda response, **_: asked.append(response.url))
    return asked


def test_ping_with_the_credentials_and_without(client, registry):
    client.ping()
    with OCIClient(registry.url) as anonymous, pytest.raises(Unauthorized, match="requires "
                                                                                  "credentials"):
        anonymous.ping()


def test_tags_and_the_catalog_are_read_across_pages(client, images):
    assert sorted(client.tags(REPOSITORY)) == sorted(TAGS)
    # distribution 2.8 answers tag lists whole (the Harbor tests page them); its catalog pages.
    everything = client.repositories()
    assert {REPOSITORY, "base/busybox", "team/web"} <= set(everything)
    asked = urls_asked(client)
    assert client.repositories(page_size=1) == everything
    pages = [url for url in asked if "/_catalog" in url]
    assert len(pages) >= len(everything)  # one per repository: the Link header was followed
    assert any("last=" in url for url in pages)


def test_manifest_digests_are_the_ones_skopeo_reports(client, images):
    for tag in TAGS:
        assert client.manifest_digest(REPOSITORY, tag) == images[f"{REPOSITORY}:{tag}"]
    docker = client.manifest(REPOSITORY, "1.0")
    oci = client.manifest(REPOSITORY, "2.0")
    assert docker.media_type == "application/vnd.docker.distribution.manifest.v2+json"
    assert oci.media_type == "application/vnd.oci.image.manifest.v1+json"
    assert docker.digest != oci.digest and DIGEST.match(oci.digest)
    by_digest = client.manifest(REPOSITORY, oci.digest)
    assert by_digest.body == oci.body


def test_a_refused_password_is_a_clear_error_without_the_password(registry, images):
    wrong = "wrong-" + registry.password[:8] + "-never-shown"
    with OCIClient(registry.url, registry.username, wrong) as oci:
        with pytest.raises(Unauthorized) as refused:
            oci.tags(REPOSITORY)
    assert "refused the credentials" in str(refused.value)
    assert wrong not in str(refused.value) and registry.password not in str(refused.value)


def test_a_registry_that_is_down_is_unreachable(registry):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with OCIClient(f"http://127.0.0.1:{port}", "u", "secret-pw", timeout=3) as oci:
        with pytest.raises(Unreachable, match="cannot reach") as down:
            oci.ping()
    assert "secret-pw" not in str(down.value)


def test_missing_tags_and_repositories_are_not_found(client, images):
    with pytest.raises(NotFound, match="not found"):
        client.manifest_digest(REPOSITORY, "9.9")
    with pytest.raises(NotFound):
        client.tags("regtest/nothing-here")


@pytest.mark.parametrize("repository, reference", [
    ("Upper/Case", "1.0"), ("../etc", "1.0"), ("a//b", "1.0"), (REPOSITORY, "-dash"),
    (REPOSITORY, "a/b"), (REPOSITORY, "sha256:short"),
])
def test_names_outside_the_distribution_grammar_are_refused_before_any_request(
        client, repository, reference):
    asked = urls_asked(client)
    with pytest.raises(InvalidReference):
        client.manifest_digest(repository, reference)
    assert asked == []


def test_a_ca_that_is_no_pem_certificate_is_refused():
    with pytest.raises(ValueError, match="PEM"):
        ca_context("not a certificate")
    with pytest.raises(ValueError, match="readable"):
        ca_context("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
