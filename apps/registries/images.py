"""The images our builds pushed to a registry, as a registry's page shows them: which
repositories (from the build records the user may see) and, read from the registry afterwards,
their tags or, in Harbor, their artifacts with the scan summary. A registry that does not answer
becomes a message on the image, never an exception for the page."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from apps.builds import rules as build_rules
from apps.builds.models import Build, TagRule

from . import services
from .harbor import Artifact
from .models import Registry
from .oci import RegistryError, Unauthorized, Unreachable

MAX_TAGS = 20
MAX_BUILDS = 5
MAX_ARTIFACTS = 10
SEVERITIES = ("Critical", "High", "Medium", "Low", "Negligible", "Unknown")


@dataclass
class ScanSummary:
    """One artifact's vulnerability report, as a line: the worst severity and counts."""

    status: str = ""
    severity: str = ""
    total: int | None = None
    fixable: int | None = None
    counts: list[tuple[str, int]] = field(default_factory=list)

    @property
    def scanned(self) -> bool:
        return bool(self.status)


@dataclass
class ArtifactView:
    digest: str
    tags: list[str]
    push_time: str
    size: int
    scan: ScanSummary


@dataclass
class Image:
    """An image repository of the registry that builds pushed, newest build first."""

    repository: str
    builds: list[Build] = field(default_factory=list)
    build_count: int = 0
    tags: list[str] = field(default_factory=list)
    more_tags: int = 0
    artifacts: list[ArtifactView] = field(default_factory=list)
    more_artifacts: int = 0
    error: str = ""


def pushed_builds(user, registries=None):
    """Succeeded push builds `user` may see (those of `registries` when given)."""
    builds = Build.objects.filter(status=Build.Status.SUCCEEDED, action=TagRule.Action.PUSH,
                                  rule__registry__isnull=False)
    if registries is not None:
        builds = builds.filter(rule__registry__in=registries)
    return build_rules.visible(user, builds)


def repository_of(registry: Registry, image_ref: str) -> str | None:
    """The repository a build pushed `image_ref` to. The host is the registry's as it was at
    the build (the build pushed to its rule's registry): one whose URL changed since keeps the
    images it received."""
    first, slash, rest = image_ref.strip().partition("/")
    if slash and re.search(r"[.:]|^localhost$", first):
        image_ref = rest
    try:
        return services.split_image_ref(registry, image_ref)[0]
    except RegistryError:  # not a reference any more (edited by hand): nothing to read
        return None


def image_counts(user, registries) -> dict[int, int]:
    """registry id -> how many image repositories the user's visible builds pushed there."""
    by_id = {r.pk: r for r in registries}
    found: dict[int, set[str]] = {pk: set() for pk in by_id}
    rows = pushed_builds(user, by_id.values()).values_list("rule__registry", "image").distinct()
    for registry_id, image_ref in rows:
        repository = repository_of(by_id[registry_id], image_ref)
        if repository:
            found[registry_id].add(repository)
    return {pk: len(names) for pk, names in found.items()}


def images_of(user, registry: Registry) -> list[Image]:
    """The repositories pushed to `registry` by builds `user` may see, most recent first;
    nothing is read from the registry yet."""
    images: dict[str, Image] = {}
    builds = pushed_builds(user, [registry]).select_related("project").defer("log") \
        .order_by("-finished_at", "-pk")
    for build in builds:
        repository = repository_of(registry, build.image)
        if not repository:
            continue
        image = images.setdefault(repository, Image(repository))
        image.build_count += 1
        if len(image.builds) < MAX_BUILDS:
            image.builds.append(build)
    return list(images.values())


def read_images(registry: Registry, images: list[Image]) -> str:
    """Fill in each image's tags (and in Harbor its artifacts) from the registry. Returns the
    registry-wide error when it does not answer or refuses the credentials (the remaining
    images are then not asked, each would wait as long); an error of one image stays on it."""
    for image in images:
        try:
            _read_tags(registry, image)
            if registry.kind == Registry.Kind.HARBOR:
                _read_artifacts(registry, image)
        except (Unreachable, Unauthorized) as exc:
            return str(exc)
        except RegistryError as exc:
            image.error = str(exc)
    return ""


def _read_tags(registry: Registry, image: Image) -> None:
    tags = services.list_tags(registry, image.repository)
    ours = [t for t in (_tag_of(b.image) for b in image.builds) if t in tags]
    # Our newest builds' tags first, then the rest highest version first (a plain registry
    # says nothing of when a tag was pushed, nor lists them in any promised order).
    ordered = list(dict.fromkeys(ours + sorted(tags, key=_version_key, reverse=True)))
    image.tags, image.more_tags = ordered[:MAX_TAGS], max(0, len(ordered) - MAX_TAGS)


def _read_artifacts(registry: Registry, image: Image) -> None:
    project, _, name = image.repository.partition("/")
    if not name:
        raise RegistryError(f"{image.repository} is not in a Harbor project (project/name)")
    artifacts = services.harbor_artifacts(registry, project, name)
    image.artifacts = [_artifact_view(a) for a in artifacts[:MAX_ARTIFACTS]]
    image.more_artifacts = max(0, len(artifacts) - MAX_ARTIFACTS)


def _version_key(tag: str) -> list:
    """"1.10" after "1.9": digit runs compare as numbers."""
    return [(1, int(part), "") if part.isdigit() else (0, 0, part)
            for part in re.split(r"(\d+)", tag) if part]


def _tag_of(image_ref: str) -> str:
    last = image_ref.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else "latest"


def scan_summary(overview: dict) -> ScanSummary:
    """Harbor's scan_overview (report type -> report) as one summary; none: not scanned."""
    report = next(iter(overview.values()), None) if overview else None
    if not isinstance(report, dict):
        return ScanSummary()
    summary = report.get("summary") or {}
    per_severity = summary.get("summary") or {}
    counts = [(s, int(per_severity[s])) for s in SEVERITIES if per_severity.get(s)]
    return ScanSummary(status=str(report.get("scan_status") or "unknown"),
                       severity=str(report.get("severity") or ""),
                       total=summary.get("total"), fixable=summary.get("fixable"),
                       counts=counts)


def _artifact_view(artifact: Artifact) -> ArtifactView:
    return ArtifactView(digest=artifact.digest, tags=artifact.tags,
                        push_time=artifact.push_time, size=artifact.size,
                        scan=scan_summary(artifact.scan_overview))
