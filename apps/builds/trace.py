"""One trace from a commit to the pods running its image: for each revision an application
deployed, which build produced each image it names (commit, tag, digest) and which of the
app's Pods run that image now and since when; and from a build, the applications and revisions
that deployed its image.

A build is found by digest first (a written-back image is pinned, `name:tag@digest`), then by
the reference it pushed to; only pushed builds count, since nothing else can be pulled. When a
tag was pushed more than once, the revision gets the newest build finished before it was
deployed. A Pod runs an image when one of its running containers has that image's digest (its
status imageID, else its spec's pinned digest) or, with no digest known on either side, names
the same reference. Pods are read from the API server at request time, as the page's resource
tree reads them (apps/applications/inspection.py): no process keeps a watch of Pods, which are
not resources an application renders.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.utils.dateparse import parse_datetime

from apps.applications.models import Application, HistoryEntry
from apps.applications.rules import visible as visible_apps
from apps.clusters import services as clusters
from apps.engine import images
from apps.engine.errors import EngineError

from .models import Build, TagRule
from .rules import visible as visible_builds

# The kinds whose Pods belong to an app: directly, or through a ReplicaSet or Job they own.
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}
CLUSTER_DOWN = "pods not shown: the cluster did not answer the last refresh"


@dataclass
class PodsRunning:
    """The app's Pods running an image now, and when the first of them started it."""
    count: int = 0
    since: datetime | None = None
    names: list[str] = field(default_factory=list)


@dataclass
class ImageTrace:
    image: str
    digest: str | None  # the reference's own, else the build's
    built_here: bool
    build: Build | None  # None when not built here, or built in a project the viewer cannot see
    pods: PodsRunning


@dataclass
class RevisionTrace:
    entry: HistoryEntry
    current: bool  # what the app is synced to now
    images: list[ImageTrace]


@dataclass
class AppTrace:
    application: Application
    revisions: list[RevisionTrace]
    older: int  # revisions left out by `limit`
    live_error: str


@dataclass
class Deployed:
    """One application that deployed a build's image."""
    application: Application
    revisions: list[HistoryEntry]  # newest first
    current: bool  # its current revision still deploys the image
    pods: PodsRunning
    live_error: str

    @property
    def first_deployed_at(self) -> datetime:
        return self.revisions[-1].deployed_at


@dataclass
class BuildTrace:
    build: Build
    applications: list[Deployed]
    waiting_for: str  # why nothing can have deployed it yet ("" once it is pushed)


# --- an application ------------------------------------------------------------------------------
def application_trace(app: Application, user, limit: int | None = None) -> AppTrace:
    """Each revision `app` deployed (newest first, `limit` of them), image by image."""
    entries = list(app.history.all())
    shown = entries[:limit] if limit else entries
    refs = {image: _parse(image) for entry in shown for image in entry.images or []}
    builds = _pushed_builds(r for r in refs.values() if r is not None)
    may_see = _visible_ids(user, builds.all())
    pods, live_error = LivePods().of(app)
    current = _current_entry(app, entries)
    revisions = []
    for entry in shown:
        traced = []
        for image in entry.images or []:
            ref = refs[image]
            build = builds.resolve(ref, entry.deployed_at) if ref else None
            digest = (ref.digest if ref else None) or (build.digest if build else None)
            traced.append(ImageTrace(
                image=image, digest=digest, built_here=build is not None,
                build=build if build is not None and build.pk in may_see else None,
                pods=running(pods, {_key(ref)} if ref else {image}, digest)))
        revisions.append(RevisionTrace(entry=entry, current=entry is current, images=traced))
    return AppTrace(application=app, revisions=revisions, older=len(entries) - len(shown),
                    live_error=live_error)


def _current_entry(app: Application, entries: list[HistoryEntry]) -> HistoryEntry | None:
    return next((e for e in entries if e.sha == app.synced_sha), None)


# --- a build -------------------------------------------------------------------------------------
def build_trace(build: Build, user) -> BuildTrace:
    """The applications `user` sees whose revisions deployed `build`'s image, the pods of each
    running it now, and since when."""
    if build.status != Build.Status.SUCCEEDED:
        return BuildTrace(build, [], f"the build has not succeeded ({build.status})")
    if not build.digest:
        why = ("a build tag only builds the image; a push tag of the same commit pushes it"
               if build.action == TagRule.Action.BUILD else "the registry gave no digest")
        return BuildTrace(build, [], f"its image was not pushed: {why}")
    target = _parse(build.image)
    if target is None:
        return BuildTrace(build, [], f"{build.image} is not an image reference")
    # Only entries whose text names the repository path can hold the image: the database
    # narrows them down, each one is then read as a reference.
    entries = (HistoryEntry.objects
               .annotate(images_text=Cast("images", TextField()))
               .filter(Q(images_text__contains=target.repository) |
                       Q(images_text__contains=build.digest),
                       application__in=visible_apps(user, Application.objects.all()))
               .select_related("application", "application__cluster", "application__project")
               .order_by("-id"))
    builds = _pushed_builds([target])
    found: dict[int, list[tuple[HistoryEntry, images.ImageReference]]] = {}
    for entry in entries:
        for image in entry.images or []:
            ref = _parse(image)
            if ref is None or ref.name != target.name:
                continue
            if ref.digest == build.digest or (
                    not ref.digest and _key(ref) == _key(target)
                    and getattr(builds.resolve(ref, entry.deployed_at), "pk", None) == build.pk):
                found.setdefault(entry.application_id, []).append((entry, ref))
    lister, deployed = LivePods(), []
    for matches in found.values():
        app = matches[0][0].application
        pods, live_error = lister.of(app)
        revisions = list(dict.fromkeys(entry for entry, _ in matches))
        current = _current_entry(app, list(app.history.only("id", "sha")))
        deployed.append(Deployed(
            application=app, revisions=revisions,
            current=current is not None and current.pk in {e.pk for e in revisions},
            pods=running(pods, {_key(ref) for _, ref in matches}, build.digest),
            live_error=live_error))
    deployed.sort(key=lambda d: (not d.current, d.application.name))
    return BuildTrace(build, deployed, "")


# --- builds of image references ------------------------------------------------------------------
class _Builds:
    def __init__(self, builds: list[Build]):
        self._all = builds
        self.by_digest: dict[str, list[Build]] = {}
        self.by_key: dict[str, list[Build]] = {}
        for build in builds:  # newest first
            self.by_digest.setdefault(build.digest, []).append(build)
            ref = _parse(build.image)
            if ref is not None:
                self.by_key.setdefault(_key(ref), []).append(build)

    def all(self) -> list[Build]:
        return self._all

    def resolve(self, ref: images.ImageReference, deployed_at: datetime) -> Build | None:
        """The build that produced the image `ref` names, for a revision deployed then."""
        if ref.digest:
            same = self.by_digest.get(ref.digest, [])
            # A reused image has one digest and several builds: the one pushed to this tag.
            tagged = [b for b in same if _key(_parse(b.image)) == _key(ref, with_digest=False)]
            return (tagged or same or [None])[0]
        candidates = self.by_key.get(_key(ref), [])
        before = [b for b in candidates if b.finished_at and b.finished_at <= deployed_at]
        return (before or candidates or [None])[0]


def _pushed_builds(refs) -> _Builds:
    refs = list(refs)
    digests = {r.digest for r in refs if r.digest}
    names = {s for r in refs for s in (_key(r, with_digest=False), _written(r))}
    if not refs:
        return _Builds([])
    builds = (Build.objects.filter(status=Build.Status.SUCCEEDED).exclude(digest="")
              .filter(Q(digest__in=digests) | Q(image__in=names))
              .select_related("repository", "project").defer("log")
              .order_by("-finished_at", "-pk"))
    return _Builds(list(builds))


def _visible_ids(user, builds: list[Build]) -> set[int]:
    ids = [b.pk for b in builds]
    if not ids:
        return set()
    return set(visible_builds(user, Build.objects.filter(pk__in=ids)).values_list("pk", flat=True))


def _parse(image: str) -> images.ImageReference | None:
    try:
        return images.parse(image)
    except images.InvalidImageReference:
        return None


def _key(ref: images.ImageReference | None, with_digest: bool = True) -> str:
    """A reference as compared with another: registry and Docker Hub's library/ filled in,
    `latest` for no tag unless pinned by digest."""
    if ref is None:
        return ""
    tag = ref.tag or (None if ref.digest and with_digest else "latest")
    return str(images.ImageReference(ref.registry, ref.repository, tag,
                                     ref.digest if with_digest else None))


def _written(ref: images.ImageReference) -> str:
    """`ref` without its digest, as a tag rule writes its image (a Docker Hub image short)."""
    name = ref.repository if ref.registry == images.DOCKER_HUB else ref.name
    return f"{name}:{ref.tag or 'latest'}"


# --- the pods running an image -------------------------------------------------------------------
class LivePods:
    """The Pods of applications, read from their clusters once per (cluster, namespace, kind)."""

    def __init__(self):
        self._lists: dict[tuple, list[dict]] = {}

    def of(self, app: Application) -> tuple[list[dict], str]:
        """The app's Pods (owned by one of its resources, directly or through a ReplicaSet or
        a Job), and why none could be read ("" when they were)."""
        rows = [r for r in app.resources or [] if r.get("kind") in WORKLOAD_KINDS]
        if not rows:
            return [], ""
        if any(c.get("type") == "ClusterError" for c in app.conditions or []):
            return [], CLUSTER_DOWN  # the page must not wait for a cluster known to be down
        mine = {(r.get("namespace") or app.namespace, r["kind"], r["name"]) for r in rows}
        kinds = {r["kind"] for r in rows}
        pods = []
        try:
            for namespace in {ns for ns, _, _ in mine}:
                owners = {}
                for api_version, kind, needed in (("apps/v1", "ReplicaSet", "Deployment"),
                                                  ("batch/v1", "Job", "CronJob")):
                    if needed in kinds:
                        for obj in self._list(app, api_version, kind, namespace):
                            owners[(kind, obj["metadata"]["name"])] = _owner_refs(obj)
                for pod in self._list(app, "v1", "Pod", namespace):
                    owners[("Pod", pod["metadata"]["name"])] = _owner_refs(pod)
                    if _owned(namespace, ("Pod", pod["metadata"]["name"]), owners, mine):
                        pods.append(pod)
        except (EngineError, OSError) as exc:
            return [], f"pods not shown: {exc}"
        return pods, ""

    def _list(self, app, api_version: str, kind: str, namespace: str) -> list[dict]:
        key = (app.cluster_id, namespace, kind)
        if key not in self._lists:
            engine = clusters.runtime(app.cluster).cluster  # its discovery is kept; no watch
            self._lists[key], _ = engine.list(engine.resource_for(api_version, kind), namespace)
        return self._lists[key]


def _owner_refs(obj: dict) -> list[tuple[str, str]]:
    return [(r.get("kind"), r.get("name")) for r in obj["metadata"].get("ownerReferences") or []]


def _owned(namespace: str, obj: tuple[str, str], owners: dict, mine: set, depth: int = 0) -> bool:
    if (namespace, *obj) in mine:
        return True
    if depth > 3:
        return False
    return any(_owned(namespace, parent, owners, mine, depth + 1)
               for parent in owners.get(obj) or [])


def running(pods: list[dict], keys: set[str], digest: str | None) -> PodsRunning:
    """Which of `pods` run, in a running container, the image of reference keys `keys` (the
    image's digest, when known on both sides, decides)."""
    found = PodsRunning()
    for pod in pods:
        started = [at for image_key, image_digest, at in _containers(pod)
                   if at is not None and (image_digest == digest if image_digest and digest
                                          else image_key in keys)]
        if started:
            found.count += 1
            found.names.append(pod["metadata"]["name"])
            first = min(started)
            found.since = first if found.since is None else min(found.since, first)
    found.names.sort()
    return found


def _containers(pod: dict):
    """(reference key, digest or None, running since or None) of each container of `pod`."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    statuses = {s.get("name"): s for field_name in ("containerStatuses", "initContainerStatuses")
                for s in status.get(field_name) or []}
    pod_started = _time(status.get("startTime"))
    for field_name in ("containers", "initContainers"):
        for container in spec.get(field_name) or []:
            image = container.get("image") or ""
            ref = _parse(image)
            state = statuses.get(container.get("name"), {})
            # The kubelet's imageID names the digest it pulled (repo@sha256:…); a bare image id
            # (sha256:… of the config) is not one, so the spec's pinned digest stands then.
            image_id = state.get("imageID") or ""
            digest = image_id.rpartition("@")[2] if "@" in image_id else ref and ref.digest
            run = (state.get("state") or {}).get("running")
            since = (_time(run.get("startedAt")) or pod_started) if isinstance(run, dict) else None
            yield (_key(ref) if ref else image), digest or None, since


def _time(text) -> datetime | None:
    try:
        return parse_datetime(text) if isinstance(text, str) else None
    except ValueError:
        return None
