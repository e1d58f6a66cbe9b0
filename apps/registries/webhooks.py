"""Harbor's webhook: an artifact pushed to a registry we know queues the image write-back.

Harbor (a project's Webhooks, notify type http) POSTs JSON such as
    {"type": "PUSH_ARTIFACT", "occur_at": 1680501893, "operator": "admin",
     "event_data": {"resources": [{"digest": "sha256:…", "tag": "1.3.0",
                                   "resource_url": "harbor.example.com/team/web:1.3.0"}],
                    "repository": {"name": "web", "namespace": "team",
                                   "repo_full_name": "team/web", "repo_type": "private"}}}
with the policy's "auth header" as `Authorization`. The registry is named by ?registry=<name>,
or found by the host of resource_url; its webhook_token must equal the header (a leading
"Bearer " is allowed on either). The image written back is always the registry's own host and
the pushed repository: a registry's token cannot move another registry's images.
Harbor sends no delivery id, and retries; a delivery is named by what it says (registry, event
time, repository, digests and tags) and handled once a day.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field

from apps.applications import writeback
from apps.applications.webhooks import first_delivery, forget_delivery
from apps.audit import services as audit
from apps.core.queues import QueueUnavailable
from apps.engine.source.image_update import Image, InvalidImage

from .models import Registry

MAX_BODY_BYTES = 256 * 1024  # Harbor's payloads are a few hundred bytes per artifact
MAX_RESOURCES = 100
PUSH_EVENTS = ("PUSH_ARTIFACT",)


class HarborWebhookError(Exception):
    status = 400


class PayloadTooLarge(HarborWebhookError):
    status = 413


class UnknownRegistry(HarborWebhookError):
    status = 404


class Unauthenticated(HarborWebhookError):
    status = 401


class WebhookNotEnabled(HarborWebhookError):
    status = 403


@dataclass
class Delivery:
    registry: Registry | None = None
    images: list[Image] = field(default_factory=list)
    ignored: str = ""  # why nothing is done (another event type, nothing tagged)
    duplicate: bool = False


def handle(body: bytes, authorization: str | None, registry_name: str = "") -> Delivery:
    """Check and queue one delivery. HarborWebhookError (with its HTTP status) when refused;
    QueueUnavailable when the write-back cannot be queued (Harbor retries)."""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes")
    payload = _json(body)
    event_data = payload.get("event_data")
    event_data = event_data if isinstance(event_data, dict) else {}
    resources = event_data.get("resources")
    resources = [r for r in resources if isinstance(r, dict)][:MAX_RESOURCES] \
        if isinstance(resources, list) else []
    registry = _registry(registry_name, resources)
    _check_token(registry, authorization)
    event = payload.get("type")
    if event not in PUSH_EVENTS:
        return Delivery(registry, ignored=f"Harbor event {str(event)[:64]!r} ignored: only "
                                          "PUSH_ARTIFACT writes images back")
    repository = _repository(event_data, resources)
    images = _images(registry, repository, resources)
    if not images:
        return Delivery(registry, ignored="no tagged artifact in the push: nothing to write")
    key = _delivery_key(registry, payload.get("occur_at"), images)
    if not first_delivery(key):
        return Delivery(registry, images, duplicate=True)
    try:
        for image in images:
            writeback.queue_write_back(image.repository, image.tag, image.digest)
    except QueueUnavailable:
        forget_delivery(key)  # Harbor's retry must not look like a duplicate
        raise
    audit.record("registry.image_pushed", registry, actor="webhook", details={
        "references": [image.reference() for image in images],
        "operator": str(payload.get("operator", ""))[:150]})
    return Delivery(registry, images)


def _json(body: bytes) -> dict:
    try:
        payload = json.loads(body or b"null")
    except (UnicodeDecodeError, ValueError):
        raise HarborWebhookError("the body is not JSON") from None
    if not isinstance(payload, dict):
        raise HarborWebhookError("the body must be a JSON object (Harbor's webhook payload)")
    return payload


def _registry(name: str, resources: list[dict]) -> Registry:
    if name:
        registry = Registry.objects.filter(name=name).first()
        if registry is None:
            raise UnknownRegistry(f"no registry named {name[:63]!r}")
        return registry
    hosts = {str(r.get("resource_url", "")).split("/", 1)[0].lower() for r in resources}
    found = [r for r in Registry.objects.all() if r.host.lower() in hosts]
    if len(found) != 1:
        raise UnknownRegistry("no registry known for this push: add ?registry=<name> to the "
                              "webhook's URL" if not found else
                              "several registries share this host: add ?registry=<name> to "
                              "the webhook's URL")
    return found[0]


def _check_token(registry: Registry, authorization: str | None) -> None:
    expected = _bare(registry.webhook_token or "")
    if not expected:
        raise WebhookNotEnabled(f"registry {registry.name} has no webhook token: set one, and "
                                "the same as the auth header of Harbor's webhook policy")
    if not authorization:
        raise Unauthenticated("no Authorization header: send the registry's webhook token")
    if not hmac.compare_digest(_bare(authorization).encode(), expected.encode()):
        raise Unauthenticated("the webhook token does not match")


def _bare(token: str) -> str:
    token = token.strip()
    return token[len("bearer "):].strip() if token.lower().startswith("bearer ") else token


def _repository(event_data: dict, resources: list[dict]) -> str:
    """The pushed repository inside the registry (`team/web`)."""
    repo = event_data.get("repository")
    full = repo.get("repo_full_name") if isinstance(repo, dict) else None
    if not full and isinstance(repo, dict) and repo.get("namespace") and repo.get("name"):
        full = f"{repo['namespace']}/{repo['name']}"
    if not full and resources:  # from resource_url: host/path[:tag][@digest]
        path = str(resources[0].get("resource_url", "")).split("/", 1)[-1].split("@", 1)[0]
        full = path.rsplit(":", 1)[0] if ":" in path.rsplit("/", 1)[-1] else path
    if not isinstance(full, str) or not full:
        raise HarborWebhookError("event_data.repository.repo_full_name is missing")
    return full


def _images(registry: Registry, repository: str, resources: list[dict]) -> list[Image]:
    images = []
    for resource in resources:
        tag, digest = resource.get("tag"), resource.get("digest") or ""
        if not tag:
            continue  # pushed by digest only: no tag to write
        try:
            images.append(Image(f"{registry.host}/{repository}", str(tag), str(digest)))
        except InvalidImage as exc:
            raise HarborWebhookError(str(exc)) from None
    return images


def _delivery_key(registry: Registry, occur_at, images: list[Image]) -> str:
    said = json.dumps([registry.pk, str(occur_at), sorted(i.reference() for i in images)])
    return "harbor:" + hashlib.sha256(said.encode()).hexdigest()
