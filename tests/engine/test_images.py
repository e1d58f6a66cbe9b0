"""Image references read as Docker and Kubernetes read them: registry host and port, Docker
Hub's short forms, tags, digests, and clear errors for what is not a reference."""
import re

import pytest

from apps.engine.images import ImageReference, InvalidImageReference, parse, registry_host

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text, registry, repository, tag, digest", [
    # Docker Hub's short forms
    ("nginx", "docker.io", "library/nginx", None, None),
    ("nginx:1.27", "docker.io", "library/nginx", "1.27", None),
    ("bitnami/redis:7.2", "docker.io", "bitnami/redis", "7.2", None),
    ("docker.io/nginx", "docker.io", "library/nginx", None, None),
    ("index.docker.io/library/nginx:1", "docker.io", "library/nginx", "1", None),
    # a registry host: a dot, a port, localhost, or an upper-case letter in the first part
    ("registry.example:5000/team/web:1.4.0", "registry.example:5000", "team/web", "1.4.0", None),
    ("registry.example/team/web", "registry.example", "team/web", None, None),
    ("127.0.0.1:5000/app:1.0", "127.0.0.1:5000", "app", "1.0", None),
    ("localhost/app", "localhost", "app", None, None),
    ("localhost:5000/a/b/c:v2", "localhost:5000", "a/b/c", "v2", None),
    ("Registry/app", "registry", "app", None, None),
    ("[::1]:5000/app:1", "[::1]:5000", "app", "1", None),
    # no host: a first part without dot, port or capital is a Docker Hub namespace
    ("team/web:2", "docker.io", "team/web", "2", None),
    ("localhost", "docker.io", "library/localhost", None, None),
    # digests, with or without a tag
    (f"registry.example:5000/team/web@{DIGEST}", "registry.example:5000", "team/web", None,
     DIGEST),
    (f"registry.example:5000/team/web:1.4.0@{DIGEST}", "registry.example:5000", "team/web",
     "1.4.0", DIGEST),
    (f"nginx@{DIGEST}", "docker.io", "library/nginx", None, DIGEST),
    # separators the grammar allows in a path
    ("reg.io/a_b/c__d/e-f/g--h/i.j:Tag_1.0-rc", "reg.io", "a_b/c__d/e-f/g--h/i.j", "Tag_1.0-rc",
     None),
])
def test_references_are_split_and_normalised(text, registry, repository, tag, digest):
    ref = parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag,
                                                                  digest)


def test_what_the_registry_is_asked_for():
    assert parse("nginx").reference == "latest"
    assert parse("nginx:1.27").reference == "1.27"
    # Kubernetes pulls by digest when one is written, whatever the tag says.
    assert parse(f"nginx:1.27@{DIGEST}").reference == DIGEST
    assert str(parse("nginx")) == "docker.io/library/nginx"
    assert str(parse(f"reg.io:5000/a:1@{DIGEST}")) == f"reg.io:5000/a:1@{DIGEST}"
    assert parse("reg.io/a:1") == ImageReference("reg.io", "a", "1", None)


@pytest.mark.parametrize("text, cause", [
    ("", "not empty"),
    ("   ", "not empty"),
    ("nginx :1", "whitespace"),
    ("Nginx", "repository 'library/Nginx'"),  # one part: a repository, and lower case
    ("reg.io/Team/web", "repository 'Team/web'"),
    ("reg.io/team//web", "repository"),
    ("reg.io/-web", "repository"),
    ("reg.io/web-", "repository"),
    ("reg.io/web:", "tag ''"),
    ("reg.io/web:.hidden", "tag '.hidden'"),
    ("reg.io/web:" + "a" * 129, "tag"),
    ("reg.io/web:1:2", "repository 'web:1'"),
    ("reg.io/web@sha256:abc", "digest 'sha256:abc'"),
    ("reg.io/web@sha256:" + "a" * 63 + "g", "digest"),
    ("reg.io/web@sha256:" + "a" * 66, "64 hex digits"),
    ("reg.io/web@sha256:" + "A" * 64, "lower case"),
    ("reg.io/web@", "digest"),
    ("reg.io/web@md5", "digest"),
    ("reg_io:5000/web", "registry host"),
    ("reg.io:port/web", "registry host"),
    ("-reg.io/web", "registry host"),
    ("reg.io/" + "a" * 260, "longer than 255"),
    (":1", "no name"),
    ("@" + DIGEST, "no name"),
])
def test_bad_references_are_refused_with_the_cause(text, cause):
    with pytest.raises(InvalidImageReference, match=re.escape(cause)):
        parse(text)


def test_registry_hosts_compare_docker_hub_aliases_and_case():
    assert registry_host("Registry-1.Docker.io") == "docker.io"
    assert registry_host("index.docker.io") == "docker.io"
    assert registry_host("Reg.Example:5000") == "reg.example:5000"
