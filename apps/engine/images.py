"""Container image references, read as Docker and Kubernetes read them (the grammar of
distribution's `reference` package): `[host[:port]/]path[:tag][@digest]`.

    reference  := name [":" tag] ["@" digest]
    name       := [domain "/"] path
    domain     := host [":" port]      host: DNS name, IPv4, or [IPv6]
    path       := component ("/" component)*     component: [a-z0-9]+ ([_.]|__|-+ [a-z0-9]+)*
    tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest     := algorithm ":" hex    (sha256: 64 hex digits)

The first part of the name is a registry host only when it holds a "." or a ":", is
"localhost", or has an upper-case letter; otherwise the image is on Docker Hub, and a single
component there is in `library/` (nginx = docker.io/library/nginx:latest). Pure Python.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

DOCKER_HUB = "docker.io"
# Names Docker Hub's registry is reached by; references and registry URLs may use any of them.
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
NAME_MAX = 255

_COMPONENT = r"[a-z0-9]+(?:(?:[_.]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = re.compile(rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])"
                   r"(?::[0-9]+)?$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$", re.ASCII)
_DIGEST = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$")
# Hex lengths of the algorithms registries use; an unknown algorithm only needs 32 or more.
_DIGEST_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}


class InvalidImageReference(ValueError):
    """Text that is not an image reference; the message says which part is wrong."""


@dataclass(frozen=True)
class ImageReference:
    registry: str  # host[:port] as written, Docker Hub's aliases as docker.io
    repository: str  # the path in that registry, e.g. team/web or library/nginx
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest when pinned (it wins over a tag, as in
        Kubernetes), else the tag, `latest` when none is written."""
        return self.digest or self.tag or "latest"

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        return self.name + (f":{self.tag}" if self.tag else "") + (
            f"@{self.digest}" if self.digest else "")


def parse(text: str) -> ImageReference:
    """An image reference, normalised (registry filled in, Docker Hub's `library/`), or
    InvalidImageReference naming what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidImageReference("an image reference is not empty")
    if text != text.strip() or any(c.isspace() for c in text):
        raise InvalidImageReference(f"image reference {_quote(text)} contains whitespace")
    name, at, digest = text.partition("@")
    if at:
        check_digest(digest, text)
    tag = None
    colon, slash = name.rfind(":"), name.rfind("/")
    if colon > slash:  # a ":" before the last "/" is a registry port
        name, tag = name[:colon], name[colon + 1:]
        if not _TAG.match(tag):
            raise InvalidImageReference(
                f"image reference {_quote(text)}: tag {_quote(tag)} is not up to 128 letters, "
                "digits, '_', '.' or '-' (not starting with '.' or '-')")
    if not name:
        raise InvalidImageReference(f"image reference {_quote(text)} has no name")
    if len(name) > NAME_MAX:
        raise InvalidImageReference(f"image reference {_quote(text)}: the name is longer than "
                                    f"{NAME_MAX} characters")
    registry, repository = split_domain(name)
    if not _HOST.match(registry):
        raise InvalidImageReference(f"image reference {_quote(text)}: {_quote(registry)} is not "
                                    "a registry host[:port]")
    if not _PATH.match(repository):
        raise InvalidImageReference(
            f"image reference {_quote(text)}: repository {_quote(repository)} is not lower-case "
            "letters and digits separated by '.', '_', '-' or '/'")
    return ImageReference(registry=registry, repository=repository, tag=tag,
                          digest=digest or None)


def split_domain(name: str) -> tuple[str, str]:
    """(registry host, repository) of a name without tag or digest, Docker's way."""
    first, slash, rest = name.partition("/")
    if not slash or (not any(c in first for c in ".:") and first != "localhost"
                     and first == first.lower()):
        registry, repository = DOCKER_HUB, name
    else:
        registry, repository = first, rest
    registry = registry_host(registry)
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    return registry, repository


def registry_host(host: str) -> str:
    """A registry host as compared with others: Docker Hub's aliases as docker.io, a DNS name
    in lower case (the port stays)."""
    host = host.lower()
    return DOCKER_HUB if host in DOCKER_HUB_ALIASES else host


def check_digest(digest: str, text: str = "") -> str:
    where = f"image reference {_quote(text)}: " if text else ""
    if not _DIGEST.match(digest):
        raise InvalidImageReference(f"{where}digest {_quote(digest)} is not algorithm:hex, "
                                    "e.g. sha256: and 64 hex digits")
    algorithm, hex_digits = digest.split(":", 1)
    wanted = _DIGEST_LENGTHS.get(algorithm)
    if wanted and len(hex_digits) != wanted:
        raise InvalidImageReference(f"{where}a {algorithm} digest has {wanted} hex digits, "
                                    f"not {len(hex_digits)}")
    if wanted and hex_digits != hex_digits.lower():
        raise InvalidImageReference(f"{where}digest hex digits are lower case")
    return digest


def _quote(text: str, limit: int = 120) -> str:
    text = str(text)
    return repr(text if len(text) <= limit else text[:limit] + "...")
