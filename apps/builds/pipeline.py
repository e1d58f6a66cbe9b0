"""One build, on the build worker: wait for a slot, export the tagged commit's tree, build
the image with buildah (or reuse the image of an earlier build with the same inputs), push it
for a `push` rule and read its digest back from the registry.

Every failure ends the build with a message naming the step, in its status and its log; the
log never holds a credential (each line is scrubbed of the registry's and the repository's).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from django.conf import settings

from apps.engine.errors import SourceError
from apps.registries import services as registries
from apps.registries.oci import NotFound, RegistryError
from apps.repositories import services as repositories

from . import services, tagrules
from .buildah import Buildah, BuildCanceled, BuildFailed, RegistryAccess
from .buildlog import BuildLog
from .models import Build, TagRule

log = logging.getLogger(__name__)


class StepFailed(Exception):
    """A step of the build failed for a reason the message gives (no credential in it)."""


def run(build_id: int) -> Build | None:
    build = Build.objects.select_related("repository", "rule__registry", "rule__project",
                                         "rule__repository", "rule__build_cluster"
                                         ).filter(pk=build_id).first()
    if build is None or build.status != Build.Status.QUEUED:
        return build  # canceled before it started, or run already
    rule = build.rule
    secrets = [build.repository.password, build.repository.ssh_private_key]
    if rule is not None:
        secrets += [rule.registry.password]
    out = BuildLog(build.pk, secrets)
    services.report_to_gitlab(build)  # pending: a worker has it, waiting for a slot
    try:
        if rule is None:
            raise StepFailed("its tag rule was deleted")
        if not services.wait_for_slot(build.pk, out.write):
            out.flush()
            return Build.objects.get(pk=build.pk)
        out.write(f"build #{build.pk}: {build.action} {build.image} from {build.repository.url} "
                  f"at {build.sha[:12]} (tag {build.tag})")
        fields = backend_for(rule)(Build.objects.get(pk=build.pk), rule, out)
    except BuildCanceled as exc:
        out.write(str(exc))
        asked = Build.objects.values_list("message", flat=True).get(pk=build.pk)
        return _end(build.pk, out, Build.Status.CANCELED, asked or "canceled while running")
    except (StepFailed, BuildFailed) as exc:
        message = out.scrub(str(exc))
        out.write(f"FAILED: {message}")
        return _end(build.pk, out, Build.Status.FAILED, message)
    except Exception as exc:  # noqa: BLE001 - the build ends failed; the worker keeps serving
        log.exception("build %s crashed", build.pk)
        message = out.scrub(f"internal error: {type(exc).__name__}: {exc}")
        out.write(f"FAILED: {message}")
        return _end(build.pk, out, Build.Status.FAILED, message)
    out.write(f"done: {build.image}" + (f"@{fields['digest']}" if fields.get("digest") else ""))
    finished = _end(build.pk, out, Build.Status.SUCCEEDED, "", **fields)
    if finished.action == TagRule.Action.PUSH and finished.digest:
        services.write_back_pushed(finished)
    return finished


def _end(build_id: int, out: BuildLog, status: str, message: str, **fields) -> Build:
    out.flush()
    return services.finish(build_id, status, message, **fields)


def backend_for(rule: TagRule):
    """What builds for `rule`: a callable (build, rule, out) -> the Build fields to store, that
    raises StepFailed, BuildFailed or BuildCanceled. buildah on this worker, or kaniko as a Job
    in a cluster (kaniko.py); another builder plugs in here."""
    if rule.backend == TagRule.Backend.KANIKO:
        from .kaniko import build_in_cluster  # it imports this module

        return build_in_cluster
    return _build_and_push


def _build_and_push(build: Build, rule: TagRule, out: BuildLog) -> dict:
    access = RegistryAccess.of(rule.registry)

    def canceled() -> bool:  # asked every half second while buildah runs
        out.flush_if_due()
        return services.cancel_requested(build.pk)

    buildah = Buildah(Path(settings.GITOPS_UI_BUILDS_DIR) / "buildah", out.write, canceled,
                      timeout=settings.GITOPS_UI_BUILD_TIMEOUT)
    local = f"localhost/gitops-ui/build:{build.inputs_key[:32]}"
    fields = {"local_image": local}
    earlier = services.reusable_build(build)
    if earlier is not None and buildah.exists(earlier.local_image):
        out.write(f"reusing the image of build #{earlier.pk} (same commit, Dockerfile, "
                  "context, build args and platform)")
        fields["reused_from"] = earlier
        if earlier.local_image != local:
            buildah.tag(earlier.local_image, local)
        buildah.tag(local, build.image)
    else:
        context, dockerfile, tree = _source(build, rule, out)
        buildah.aliases[str(tree)] = f"<commit {build.sha[:8]}>"
        out.flush()
        buildah.build(context, dockerfile, [local, build.image], access, rule.build_args,
                      rule.platform)
    if build.action == TagRule.Action.PUSH:
        out.flush()
        pushed = buildah.push(local, build.image, access)
        fields.update(read_back(rule.registry, build.image, pushed, "buildah", out))
    return fields


def _source(build: Build, rule: TagRule, out: BuildLog) -> tuple[Path, Path, Path]:
    """The commit's tree (the engine's shared export), and the context folder and Dockerfile
    in it, both checked to stay inside it (a symlink in the repository could point out)."""
    out.write(f"exporting {build.sha[:12]}")
    try:
        tree = repositories.repo_cache().checkout(build.repository.url, build.sha,
                                                  repositories.credentials(build.repository))
    except SourceError as exc:
        raise StepFailed(f"the commit could not be read: {exc}") from None
    try:
        context_rel = tagrules.check_relative_path("context", rule.context, allow_dot=True)
        dockerfile_rel = tagrules.check_relative_path("dockerfile", rule.dockerfile,
                                                      allow_dot=False)
    except tagrules.RuleInvalid as exc:
        raise StepFailed(f"tag rule: {exc}") from None
    root = tree.resolve()
    context, dockerfile = (root / context_rel).resolve(), (root / dockerfile_rel).resolve()
    for name, path in (("context", context), ("Dockerfile", dockerfile)):
        if not path.is_relative_to(root):
            raise StepFailed(f"the {name} path leads out of the repository (a symlink?)")
    if not context.is_dir():
        raise StepFailed(f"commit {build.sha[:12]} has no folder {context_rel!r} (the context)")
    if not dockerfile.is_file():
        raise StepFailed(f"commit {build.sha[:12]} has no {dockerfile_rel!r}: nothing to build")
    return context, dockerfile, root


def read_back(registry, image: str, reported: str, builder: str, out: BuildLog, *,
              missing: str = "") -> dict:
    """The digest and size the registry serves for the pushed image's tag. `reported` is the
    digest the builder gave (noted when the registry serves another); `missing`, if given, is
    the failure when the registry has no such image."""
    try:
        repository, tag = registries.split_image_ref(registry, image)
        with registries.oci_client(registry) as client:
            digest = client.manifest_digest(repository, tag)
            manifest = client.manifest(repository, digest)
    except RegistryError as exc:
        if missing and isinstance(exc, NotFound):
            raise StepFailed(missing) from None
        raise StepFailed(f"the pushed image could not be read back: {exc}") from None
    if reported and reported != digest:
        out.write(f"note: {builder} reported {reported}, the registry serves {digest}")
    out.write(f"pushed {image}@{digest}")
    return {"digest": digest, "size": _size(manifest.body)}


def _size(body: bytes) -> int | None:
    try:
        data = json.loads(body)
        parts = [data.get("config") or {}, *(data.get("layers") or [])]
        return sum(int(part.get("size") or 0) for part in parts) or None
    except (ValueError, TypeError, AttributeError):
        return None  # an index: no single size
