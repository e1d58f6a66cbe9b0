"""The missing-image guard: before a sync, each container image an application's manifests
reference that lives on a registry we know (a Registry record with the image's host) is looked
up with a manifest HEAD. One that is absent becomes a MissingImage condition, and automated
syncs wait until it is there, rather than leave pods in ImagePullBackOff.

A registry that cannot answer (down, credentials refused) gives an ImageCheckFailed condition
that blocks nothing: the guard must not stop deployments because it is blind. Images on other
registries are not checked.

Answers are remembered in this process, per registry and reference: for CHECK_TTL seconds, and
for ever once a digest was found (its content cannot change), so a refresh where nothing
changed asks no registry anything. A hard refresh asks again (someone just pushed the image).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from apps.engine import images
from apps.registries import services as registries
from apps.registries.models import Registry
from apps.registries.oci import NotFound, RegistryError, Unreachable

from .models import Application

log = logging.getLogger(__name__)

MISSING_IMAGE = "MissingImage"
CHECK_FAILED = "ImageCheckFailed"
CHECK_TTL = 60.0  # seconds an answer about a tag (or an error) is trusted
CHECK_TIMEOUT = 5.0  # seconds per registry call; a refresh must not wait long on a dead one
_REMEMBERED_MAX = 20000
REGISTRIES_TTL = 2.0  # seconds the list of Registry records is trusted in another process


@dataclass(frozen=True)
class Outcome:
    found: bool
    missing: bool = False
    cause: str = ""  # why it could not be checked
    unreachable: bool = False  # no answer at all: the registry's other images are not tried


FOUND = Outcome(found=True)
MISSING = Outcome(found=False, missing=True)

_lock = threading.Lock()
_remembered: dict[tuple, tuple[float, Outcome]] = {}  # key -> (valid until, outcome)
_known: tuple[float, dict[str, Registry]] | None = None  # (valid until, known_registries())


def conditions(app: Application, manifests: list[dict], recheck: bool = False) -> list[dict]:
    """The guard's conditions for the app's desired `manifests`: one per image that is missing
    or could not be checked. `recheck`: ask the registries again, whatever is remembered,
    except digests already found."""
    if not settings.GITOPS_UI_IMAGE_GUARD:
        return []
    from .operations import deployed_images  # operations imports reconcile, which imports us
    from .reconcile import condition, describe_unexpected

    try:
        results = check(deployed_images(manifests), recheck)
    except Exception as exc:  # a bug here must not hide the comparison the refresh made
        log.exception("image check of %s failed", app.name)
        return [condition(CHECK_FAILED, f"could not check images: {describe_unexpected(exc)}")]
    found = []
    for text, ref, registry, outcome in results:
        if outcome.missing:
            found.append(condition(MISSING_IMAGE, f"image {text} not found in registry "
                                                  f"{registry.name}; automated sync waits until "
                                                  "it is there"))
        elif not outcome.found:
            found.append(condition(CHECK_FAILED, f"could not check image {text} in registry "
                                                 f"{registry.name}: {outcome.cause}"))
    return found


def blocks_automated_sync(app: Application) -> bool:
    return any(c.get("type") == MISSING_IMAGE for c in app.conditions or [])


def check(texts: list[str], recheck: bool = False) -> list[tuple[str, images.ImageReference,
                                                                 Registry, Outcome]]:
    """(image as written, its reference, its registry, outcome) for each of `texts` on a known
    registry; references that do not parse are left to Kubernetes to report."""
    wanted = []
    known: dict[str, Registry] | None = None
    for text in texts:
        try:
            ref = images.parse(text)
        except images.InvalidImageReference:
            continue
        if known is None:  # no query for an app whose manifests hold no image
            known = known_registries()
        if ref.registry in known:
            wanted.append((text, ref, known[ref.registry]))
    results = []
    clients: dict[int, object] = {}
    down: dict[int, Outcome] = {}  # one unreachable answer per registry and pass is enough
    try:
        for text, ref, registry in wanted:
            key = _key(registry, ref)
            outcome = None if recheck and not ref.digest else _recall(key)
            if outcome is None:
                outcome = down.get(registry.pk)
            if outcome is None:
                if registry.pk not in clients:
                    clients[registry.pk] = registries.oci_client(registry)
                    clients[registry.pk].timeout = CHECK_TIMEOUT
                outcome = _ask(clients[registry.pk], ref)
                if outcome.unreachable:
                    down[registry.pk] = outcome
            _remember(key, ref, outcome)
            results.append((text, ref, registry, outcome))
    finally:
        for client in clients.values():
            client.close()
    return results


def known_registries() -> dict[str, Registry]:
    """Registry records by the host image references name them with. Read at most every
    REGISTRIES_TTL seconds: every refresh asks, and a first sync of 1,000 apps is thousands of
    refreshes. An edit in this process is seen at once (_registries_changed), in another one
    (the web server) within REGISTRIES_TTL."""
    global _known
    if transaction.get_connection().in_atomic_block:  # its own writes must be seen
        return _read_registries()
    now = time.monotonic()
    known = _known
    if known is None or known[0] < now:
        known = _known = (now + REGISTRIES_TTL, _read_registries())
    return known[1]


def _read_registries() -> dict[str, Registry]:
    return {images.registry_host(registry.host): registry for registry in Registry.objects.all()
            if registry.host}


def forget() -> None:
    """Drop every remembered answer (tests, and a registry edited in this process)."""
    global _known
    with _lock:
        _remembered.clear()
        _known = None


def _registries_changed(**kwargs) -> None:
    global _known
    _known = None


post_save.connect(_registries_changed, sender=Registry, dispatch_uid="image-guard-registries")
post_delete.connect(_registries_changed, sender=Registry, dispatch_uid="image-guard-registries-del")


def _ask(client, ref: images.ImageReference) -> Outcome:
    try:
        client.manifest_digest(ref.repository, ref.reference)
    except NotFound:
        return MISSING
    except Unreachable as exc:
        return Outcome(found=False, cause=str(exc), unreachable=True)
    except RegistryError as exc:  # credentials refused, an error status, a name it refuses
        return Outcome(found=False, cause=str(exc))
    return FOUND


def _key(registry: Registry, ref: images.ImageReference) -> tuple:
    # The record's URL and last edit are part of the key: new credentials or a new address
    # make every earlier answer about it void.
    return (registry.pk, registry.url, registry.updated_at, ref.repository, ref.reference)


def _recall(key: tuple) -> Outcome | None:
    with _lock:
        entry = _remembered.get(key)
    if entry is None or entry[0] < time.monotonic():
        return None
    return entry[1]


def _remember(key: tuple, ref: images.ImageReference, outcome: Outcome) -> None:
    until = float("inf") if (ref.digest and outcome.found) else time.monotonic() + CHECK_TTL
    with _lock:
        if len(_remembered) >= _REMEMBERED_MAX:
            now = time.monotonic()
            for stale in [k for k, (valid, _) in _remembered.items() if valid < now]:
                del _remembered[stale]
            if len(_remembered) >= _REMEMBERED_MAX:
                _remembered.clear()
        _remembered[key] = (until, outcome)
