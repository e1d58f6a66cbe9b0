"""Image write-back (Argo CD Image Updater's job): a new tag of an image, pushed to a registry,
is written into the deploy repository of each application whose policy (ImageUpdater) accepts
it; the engine then syncs the commit like any other.

For one pushed tag: the policies naming the image that accept the tag (semver range, pattern,
newest build) are grouped by repository and branch; each application's folder, read at the
branch head, is edited (engine/source/image_update.py) and every edit of a group goes into ONE
commit, pushed with the repository's credentials (rebased and pushed again if the branch moved).
The applications are then refreshed. Each outcome is kept on the policy (last_status, ...) and
in the audit log (`application.image_updated`, `application.image_update_failed`, naming the
cause: a malformed file, a key path absent, a push refused).
"""
from __future__ import annotations

import fnmatch
import logging
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path

from django.utils import timezone

from apps.audit import services as audit
from apps.core.queues import QueueUnavailable, job_queue, queue_errors, redis_connection
from apps.engine.errors import EngineError
from apps.engine.source import image_update
from apps.engine.source.git_commit import AUTHOR
from apps.engine.source.image_update import HelmTarget, Image, ImageUpdateError
from apps.engine.source.semver import InvalidVersion, Range, Version, check_range
from apps.repositories import services as repositories

from . import queueing, rendering
from .models import Application, ImageUpdater
from .operations import deployed_images
from .services import ApplicationError, tracked_branch

log = logging.getLogger(__name__)

DEFAULT_AUTHOR = "GitOps UI <gitops-ui@localhost>"
DEFAULT_MESSAGE = "build: update {image} to {tag} in {app}\n\nfrom {old_tag}"
PLACEHOLDERS = ("app", "image", "tag", "digest", "old_tag")
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
BRANCH = re.compile(r"^(?!/|.*(?:\.\.|//|@\{|\.lock$|/$|\.$))[A-Za-z0-9._/-]{1,200}$")
WRITEBACK_JOB = "apps.applications.writeback_jobs.write_back"
# One group (repository, branch) written at a time across workers: each sees the last commit.
LOCK_SECONDS = 600
FOLDER_FILE_LIMIT = 2 * 1024 * 1024  # a YAML file larger than this is not a deploy file
READABLE = (".yaml", ".yml")


class Skip(Exception):
    """Nothing to write for this application (the reason says why); not an error."""


@dataclass
class Outcome:
    updated: dict[str, str] = field(default_factory=dict)  # app name -> commit sha
    skipped: dict[str, str] = field(default_factory=dict)  # app name -> why
    failed: dict[str, str] = field(default_factory=dict)  # app name -> the cause


@dataclass
class _Plan:
    updater: ImageUpdater
    changes: dict[str, bytes]  # repository path -> new content
    old_tag: str


# --- the policy's rules ---------------------------------------------------------------------
def policy_problems(updater: ImageUpdater) -> dict[str, str]:
    """field -> why the policy cannot be used ({} when it can)."""
    problems = {}
    if not image_update.NAME.match(updater.image or "") or ":" in updater.image.rsplit("/", 1)[-1]:
        problems["image"] = "an image repository without tag or digest, e.g. registry:5000/team/web"
    try:
        _tag_filter(updater)
    except ValueError as exc:
        problems["constraint"] = str(exc)
    if updater.target == ImageUpdater.Target.HELM:
        try:
            _helm_target(updater)
        except ImageUpdateError as exc:
            problems["helm_tag_key"] = str(exc)
    if updater.commit_author and not AUTHOR.match(updater.commit_author):
        problems["commit_author"] = "of the form Name <email>"
    unknown = [p for p in PLACEHOLDER.findall(updater.commit_message or "") if p not in PLACEHOLDERS]
    if unknown:
        problems["commit_message"] = (f"unknown placeholder {{{unknown[0]}}}; use "
                                      + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS))
    if updater.branch and not BRANCH.match(updater.branch):
        problems["branch"] = "not a branch name"
    return problems


def _tag_filter(updater: ImageUpdater):
    """tag -> accepted? ValueError naming what is wrong with the constraint."""
    constraint = (updater.constraint or "").strip()
    if updater.strategy == ImageUpdater.Strategy.SEMVER:
        if not constraint:
            return _is_version
        try:
            check_range(constraint)
        except InvalidVersion as exc:
            raise ValueError(f"not a semver range: {exc}") from None
        wanted = Range.parse(constraint)
        return lambda tag: _is_version(tag) and wanted.matches(Version.parse(tag))
    if not constraint:
        if updater.strategy == ImageUpdater.Strategy.PATTERN:
            raise ValueError("the pattern strategy needs a glob (v1.*) or regexp:<expression>")
        return lambda tag: True
    if constraint.startswith("regexp:"):
        try:
            expression = re.compile(constraint[len("regexp:"):])
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return lambda tag: expression.search(tag) is not None
    return lambda tag: fnmatch.fnmatchcase(tag, constraint)


def _is_version(tag: str) -> bool:
    try:
        Version.parse(tag)
        return True
    except InvalidVersion:
        return False


def accepts(updater: ImageUpdater, tag: str) -> bool:
    try:
        return _tag_filter(updater)(tag)
    except ValueError:
        return False


def _helm_target(updater: ImageUpdater) -> HelmTarget:
    return HelmTarget(values_file=updater.helm_values_file or "values.yaml",
                      tag_key=updater.helm_tag_key, repository_key=updater.helm_repository_key,
                      digest_key=updater.helm_digest_key)


POLICY_FIELDS = ("image", "strategy", "constraint", "target", "helm_values_file", "helm_tag_key",
                 "helm_repository_key", "helm_digest_key", "pin_digest", "branch",
                 "commit_author", "commit_message", "enabled")


def save_policy(updater: ImageUpdater) -> ImageUpdater:
    """Create or edit a policy (values already validated); the audit log gets what changed."""
    audit.save_recorded(updater, "application.image_updater", POLICY_FIELDS)
    return updater


def delete_policy(updater: ImageUpdater) -> None:
    app, image = updater.application, updater.image
    updater.delete()
    audit.record("application.image_updater_deleted", app, details={"image": image})


# --- queueing ---------------------------------------------------------------------------------
def queue_write_back(image_repository: str, tag: str, digest: str = "") -> None:
    """Queue write_back on the `sync` queue (someone is waiting for the cluster to follow).
    QueueUnavailable when Redis cannot be reached."""
    with queue_errors("the image write-back"):
        job_queue(queueing.SYNC_QUEUE).enqueue(WRITEBACK_JOB, image_repository, tag,
                                                         digest)


# --- the write-back ---------------------------------------------------------------------------
def write_back(image_repository: str, tag: str, digest: str = "") -> Outcome:
    """Write `image_repository:tag` (@digest) into the folders of the applications whose policy
    accepts it: one commit per repository and branch, then a refresh of each app changed."""
    image = Image(image_repository, tag, digest)  # InvalidImage: nothing is written
    outcome = Outcome()
    groups: dict[tuple[int, str], list[ImageUpdater]] = {}
    updaters = ImageUpdater.objects.filter(enabled=True).select_related(
        "application__repository", "application__project").order_by("application__name")
    for updater in updaters:
        if not image_update.same_image(updater.image, image.repository):
            continue
        app = updater.application
        if not accepts(updater, tag):
            _skip(updater, outcome, f"tag {tag} is outside the policy's constraint", tag)
            continue
        if app.deletion:
            _skip(updater, outcome, "the application is being deleted", tag)
            continue
        if app.chart:
            _fail(updater, outcome, image, "the application deploys a chart from a Helm "
                                           "repository: there is no Git folder to write to")
            continue
        try:
            branch = updater.branch or tracked_branch(app)
        except (ApplicationError, EngineError) as exc:
            _fail(updater, outcome, image, f"which branch to write to: {exc}; set the "
                                           "policy's branch")
            continue
        groups.setdefault((app.repository_id, branch), []).append(updater)
    for (_, branch), members in groups.items():
        _write_group(members[0].application.repository, branch, members, image, outcome)
    return outcome


def _write_group(repo, branch: str, updaters: list[ImageUpdater], image: Image,
                 outcome: Outcome) -> None:
    lock = redis_connection(queueing.SYNC_QUEUE).lock(
        f"gitops-ui:writeback:{repo.pk}:{branch}", timeout=LOCK_SECONDS,
        blocking_timeout=LOCK_SECONDS)
    with lock:
        try:
            head = repositories.refs(repo).get(f"refs/heads/{branch}")
        except EngineError as exc:
            head, error = None, f"cannot read the branches of {repo.url}: {exc}"
        else:
            error = f"branch {branch!r} not found in {repo.url}"
        if head is None:
            for updater in updaters:
                _fail(updater, outcome, image, error)
            return
        plans, pending = [], {}
        for updater in updaters:
            try:
                plan = _plan(updater, head, image, pending)
            except Skip as why:
                _skip(updater, outcome, str(why), image.tag)
                continue
            except (ImageUpdateError, EngineError) as exc:
                _fail(updater, outcome, image, str(exc))
                continue
            pending.update(plan.changes)
            plans.append(plan)
        if not plans:
            return
        try:
            sha = repositories.commit_files(repo, branch, pending, _message(plans, image),
                                            plans[0].updater.commit_author or DEFAULT_AUTHOR,
                                            base=head)
        except EngineError as exc:  # push refused after retries, a conflicting edit, ...
            for plan in plans:
                _fail(plan.updater, outcome, image, f"nothing was written: {exc}")
            return
    for plan in plans:
        _updated(plan, image, branch, sha, outcome)


def _plan(updater: ImageUpdater, head: str, image: Image, pending: dict[str, bytes]) -> _Plan:
    """The edit of the application's folder at `head` (with `pending`, the edits of the apps
    before it in the same commit); Skip when there is nothing to write."""
    app = updater.application
    folder = posixpath.normpath(app.path or ".").strip("/")
    folder = "" if folder == "." else folder
    files = _folder_files(app, head, folder)
    for path, data in pending.items():  # two apps sharing a folder: one edit on the other
        if not folder or path.startswith(folder + "/"):
            files[path[len(folder) + 1:] if folder else path] = data
    for_target = _for_target(updater, files)
    helm = _helm_target(updater) if updater.target == ImageUpdater.Target.HELM else None
    written = image if updater.pin_digest else Image(image.repository, image.tag)
    changes = image_update.update_files(for_target, written, helm)
    if not changes:
        raise Skip(f"{image.repository}:{image.tag} is already in Git")
    old_tags = _tags_in_git(app, head, image.repository)
    if updater.strategy == ImageUpdater.Strategy.SEMVER:
        new = Version.parse(image.tag)
        older = [t for t in old_tags if _is_version(t) and not Version.parse(t) < new]
        if older:
            raise Skip(f"Git already has {image.repository}:{older[0]}, not older than "
                       f"{image.tag}")
    return _Plan(updater, {posixpath.join(folder, p) if folder else p: data
                           for p, data in changes.items()}, ", ".join(old_tags) or "none")


def _for_target(updater: ImageUpdater, files: dict[str, bytes]) -> dict[str, bytes]:
    kustomizations = [n for n in image_update.KUSTOMIZATIONS if n in files]
    if updater.target == ImageUpdater.Target.KUSTOMIZE and not kustomizations:
        raise ImageUpdateError("the policy writes to a kustomization, and the folder has no "
                               "kustomization.yaml")
    if updater.target == ImageUpdater.Target.MANIFESTS:
        # Without the kustomization (and Chart.yaml), update_files edits the manifests.
        return {p: d for p, d in files.items()
                if p not in image_update.KUSTOMIZATIONS and p != "Chart.yaml"}
    return files


def _folder_files(app: Application, head: str, folder: str) -> dict[str, bytes]:
    """The YAML files of the folder at `head` (path relative to the folder -> bytes). Links
    are not followed: a file of the repository may not bring in one of this machine."""
    root = repositories.checkout(app.repository, head, [folder or "."])
    base = root / folder if folder else root
    if not base.is_dir() or base.is_symlink():
        raise ImageUpdateError(f"folder {folder or '.'} not found in the repository at "
                               f"{head[:12]}")
    files = {}
    for path in sorted(base.rglob("*")):
        relative = path.relative_to(base).as_posix()
        if (path.is_symlink() or not path.is_file() or any(p.startswith(".") for p in
                                                            Path(relative).parts)):
            continue
        if relative.endswith(READABLE) or path.name in image_update.KUSTOMIZATIONS:
            if path.stat().st_size <= FOLDER_FILE_LIMIT:
                files[relative] = path.read_bytes()
    return files


def _tags_in_git(app: Application, head: str, repository: str) -> list[str]:
    """The tags of `repository` the app's manifests at `head` deploy (its render)."""
    desired = rendering.desired_state(app, sha=head)
    tags = []
    for ref in deployed_images(desired.manifests):
        name = image_update.image_name(ref)
        if name and image_update.same_image(name, repository):
            tail = ref.split("@", 1)[0][len(name):]
            tags.append(tail[1:] if tail.startswith(":") else "latest")
    return sorted(set(tags))


def _message(plans: list[_Plan], image: Image) -> str:
    texts = [render_message(p.updater.commit_message or DEFAULT_MESSAGE, {
        "app": p.updater.application.name, "image": image.repository, "tag": image.tag,
        "digest": image.digest, "old_tag": p.old_tag}) for p in plans]
    if len(texts) == 1:
        return texts[0]
    subject = f"build: update {image.repository} to {image.tag} in {len(plans)} applications"
    return subject + "\n\n" + "\n\n".join(dict.fromkeys(texts))


def render_message(template: str, values: dict[str, str]) -> str:
    """`{name}` replaced by its value; no format() (a template must not reach attributes)."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


# --- outcomes ---------------------------------------------------------------------------------
def _record(updater: ImageUpdater, status: str, message: str, tag: str, commit: str = "") -> None:
    ImageUpdater.objects.filter(pk=updater.pk).update(
        last_status=status, last_message=message[:2000], last_tag=tag[:128], last_commit=commit,
        last_run_at=timezone.now())


def _skip(updater: ImageUpdater, outcome: Outcome, why: str, tag: str) -> None:
    outcome.skipped[updater.application.name] = why
    _record(updater, "Skipped", why, tag)


def _fail(updater: ImageUpdater, outcome: Outcome, image: Image, cause: str) -> None:
    app = updater.application
    outcome.failed[app.name] = cause
    _record(updater, "Failed", cause, image.tag)
    log.warning("image write-back of %s:%s to %s failed: %s", image.repository, image.tag,
                app.name, cause)
    audit.record("application.image_update_failed", app, actor="image-updater", details={
        "image": image.repository, "tag": image.tag, "reference": image.reference(),
        "error": cause})


def _updated(plan: _Plan, image: Image, branch: str, sha: str, outcome: Outcome) -> None:
    app = plan.updater.application
    outcome.updated[app.name] = sha
    _record(plan.updater, "Updated", f"{image.tag} written to {branch} ({sha[:12]})",
            image.tag, sha)
    audit.record("application.image_updated", app, actor="image-updater", details={
        # The digest within `reference`: a key named digest is scrubbed as secret-looking.
        "image": image.repository, "tag": image.tag, "reference": image.reference(),
        "previous": plan.old_tag, "branch": branch, "commit": sha,
        "files": sorted(plan.changes)})
    try:
        queueing.schedule_refresh_by_name(app.name)
    except QueueUnavailable:  # the repository poll finds the commit anyway
        log.warning("could not queue the refresh of %s after its image write-back", app.name)
