"""Registry actions: check a connection, list tags, read digests, and Harbor's projects,
artifacts and pull robots, each with the registry's stored credentials."""
from __future__ import annotations

import re

from apps.audit import services as audit

from .harbor import Artifact, HarborClient, RobotAccount
from .models import Registry
from .oci import InvalidReference, OCIClient, RegistryError, check_reference, check_repository

REGISTRY_FIELDS = ("name", "kind", "url", "username", "password", "verify_tls", "ca_data",
                   "webhook_token")


def oci_client(registry: Registry) -> OCIClient:
    return OCIClient(registry.url, registry.username, registry.password,
                     verify=registry.verify_tls, ca_pem=registry.ca_data, name=registry.name)


def harbor_client(registry: Registry) -> HarborClient:
    if registry.kind != Registry.Kind.HARBOR:
        raise RegistryError(f"registry {registry.name} is not a Harbor")
    return HarborClient(registry.url, registry.username, registry.password,
                        verify=registry.verify_tls, ca_pem=registry.ca_data, name=registry.name)


def check_connection(registry: Registry) -> bool:
    """Ping the registry's /v2/ with the stored credentials; the outcome is kept on the record
    for the user (the message never holds a credential)."""
    try:
        with oci_client(registry) as client:
            client.ping()
        status, message, ok = "Successful", "", True
    except RegistryError as exc:
        status, message, ok = "Failed", str(exc), False
    registry.connection_status, registry.connection_message = status, message
    Registry.objects.filter(pk=registry.pk).update(connection_status=status,
                                                   connection_message=message)
    return ok


def list_tags(registry: Registry, repository: str, page_size: int | None = None) -> list[str]:
    with oci_client(registry) as client:
        return client.tags(repository, page_size=page_size)


def split_image_ref(registry: Registry, image_ref: str) -> tuple[str, str]:
    """`[host/]repository(:tag|@digest)` -> (repository, tag or digest); the host, when given,
    must be the registry's own."""
    ref = image_ref.strip()
    if ref.startswith(f"{registry.host}/"):
        ref = ref[len(registry.host) + 1:]
    elif "/" in ref and re.search(r"[.:]|^localhost$", ref.split("/", 1)[0]):
        raise InvalidReference(f"image {image_ref[:200]} is not in registry {registry.name} "
                               f"({registry.host})")
    if "@" in ref:
        repository, reference = ref.split("@", 1)
    elif ":" in ref.rsplit("/", 1)[-1]:
        repository, reference = ref.rsplit(":", 1)
    else:
        repository, reference = ref, "latest"
    return check_repository(repository), check_reference(reference)


def digest_of(registry: Registry, image_ref: str) -> str:
    """The manifest digest `image_ref` resolves to in `registry` (NotFound if absent)."""
    repository, reference = split_image_ref(registry, image_ref)
    with oci_client(registry) as client:
        return client.manifest_digest(repository, reference)


def ensure_harbor_project(registry: Registry, project: str, public: bool = False) -> dict:
    with harbor_client(registry) as client:
        return client.ensure_project(project, public=public)


def harbor_artifacts(registry: Registry, project: str, repository: str) -> list[Artifact]:
    with harbor_client(registry) as client:
        return client.artifacts(project, repository)


def create_pull_robot(registry: Registry, project: str, name: str) -> RobotAccount:
    """A Harbor robot account that may pull `project`. Its secret is returned to the caller
    once and stored nowhere here; the audit log gets its name only."""
    with harbor_client(registry) as client:
        robot = client.create_pull_robot(name, project)
    audit.record("registry.robot_created", registry,
                 details={"project": project, "robot": robot.name})
    return robot


def save_registry(registry: Registry) -> Registry:
    """Create or edit a registry (values already validated); the audit log gets what changed,
    the password only as "(changed)"."""
    return audit.save_recorded(registry, "registry", REGISTRY_FIELDS)


def delete_registry(registry: Registry) -> None:
    pk, name = registry.pk, registry.name
    registry.delete()
    audit.record("registry.deleted", None, object_type="registry", object_name=name,
                 details={"id": pk})
