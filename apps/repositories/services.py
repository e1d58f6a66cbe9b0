"""Repository actions: credentials, the shared clone cache, revisions and checkouts."""
from __future__ import annotations

import hashlib
import secrets
from functools import lru_cache
from typing import Collection
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings

from apps.audit import services as audit
from apps.engine.errors import SourceError
from apps.engine.source import GitCredentials, RepoCache
from apps.engine.source.git_auth import check_known_hosts, check_private_key, parse_ssh_url

from .models import Repository


@lru_cache(maxsize=1)
def repo_cache() -> RepoCache:
    # Every process (web, workers) shares the folders, so the secret derives from a shared key.
    secret = hashlib.sha256(b"checkout-paths:" + settings.ENCRYPTION_KEY.encode()).digest()
    return RepoCache(Path(settings.DATA_DIR) / "repos", path_secret=secret)


def credentials(repo: Repository) -> GitCredentials:
    return GitCredentials(username=repo.username, password=repo.password,
                          ssh_private_key=repo.ssh_private_key,
                          ssh_known_hosts=repo.ssh_known_hosts)


def ssh_problems(url: str, private_key: str, known_hosts: str,
                 provided: Collection[str]) -> dict[str, str]:
    """field -> message for SSH settings that do not fit `url` (the values to be stored): an SSH
    URL needs a usable key and known_hosts; an HTTPS one takes neither among the `provided`
    fields (what an SSH URL left stored is unused, and asked again if it comes back). Never the
    key back."""
    try:
        ssh = parse_ssh_url(url or "")
    except SourceError:
        return {}  # the URL's own validation says why
    problems = {}
    if ssh is None:
        for name, value in (("ssh_private_key", private_key), ("ssh_known_hosts", known_hosts)):
            if value and name in provided:
                problems[name] = "only an SSH URL (ssh://… or user@host:path) takes this"
        return problems
    for name, value, check in (("ssh_private_key", private_key, check_private_key),
                               ("ssh_known_hosts", known_hosts, check_known_hosts)):
        if not value or not value.strip():
            problems[name] = "an SSH URL needs this (known_hosts is always checked)"
            continue
        try:
            check(value)
        except SourceError as exc:
            problems[name] = str(exc)
    return problems


def normalise_url(url: str) -> str:
    """The form two spellings of one repository share (scheme, case of host, .git, slash; for
    SSH the user and port too, so an HTTPS URL in a webhook finds it)."""
    try:
        ssh = parse_ssh_url(url)
    except SourceError:
        ssh = None
    if ssh is not None:
        path = ssh.path.strip("/")
        return f"{ssh.host.lower()}/{path[:-4] if path.endswith('.git') else path}"
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower() + (f":{parts.port}" if parts.port else "")
    path = parts.path.rstrip("/")
    path = path[:-4] if path.endswith(".git") else path
    return f"{host}{path}"


def refs(repo: Repository) -> dict[str, str]:
    return repo_cache().ls_remote(repo.url, credentials(repo))


def fetched_refs(repo: Repository) -> dict[str, str]:
    """refs(), with the commits they name fetched into the cache in the same call (a push's
    refresh, which reads the new commit next)."""
    return repo_cache().fetch_refs(repo.url, credentials(repo))


def resolve(repo: Repository, revision: str, known_refs: dict | None = None,
            since: float | None = None) -> str:
    return repo_cache().resolve(repo.url, revision, credentials(repo), refs=known_refs, since=since)


def changed_files(repo: Repository, old: str, new: str) -> list[str] | None:
    """Paths that differ between two commits of the repository (RepoCache.changed_files)."""
    return repo_cache().changed_files(repo.url, old, new, credentials(repo))


def checkout(repo: Repository, sha: str, paths: list[str] | None = None) -> Path:
    """Commit `sha`'s files: only `paths` and what they refer to when given (RepoCache.checkout)."""
    return repo_cache().checkout(repo.url, sha, credentials(repo), paths=paths)


def commit_files(repo: Repository, branch: str, changes: dict[str, bytes | None], message: str,
                 author: str, base: str | None = None) -> str:
    """Commit `changes` on `branch` and push with the repository's credentials; rebased and
    pushed again when another writer got there first (RepoCache.commit_files). The new head."""
    return repo_cache().commit_files(repo.url, branch, changes, message, author,
                                     credentials(repo), base=base)


def check_connection(repo: Repository) -> bool:
    try:
        refs(repo)
        status, message = "Successful", ""
    except SourceError as exc:
        status, message = "Failed", str(exc)
    Repository.objects.filter(pk=repo.pk).update(connection_status=status,
                                                 connection_message=message)
    repo.connection_status, repo.connection_message = status, message
    return status == "Successful"


def find_by_url(url: str) -> list[Repository]:
    wanted = normalise_url(url)
    return [r for r in Repository.objects.all() if normalise_url(r.url) == wanted]


REPOSITORY_FIELDS = ("url", "username", "password", "ssh_private_key", "ssh_known_hosts",
                     "webhook_secret", "gitlab_url", "gitlab_project", "gitlab_token")


def save_repository(repo: Repository) -> Repository:
    """Create or edit a repository (values already validated); the audit log gets what changed,
    the password and webhook secret only as "(changed)"."""
    stored = Repository.objects.filter(pk=repo.pk).values(
        "gitlab_url", "gitlab_project").first() if repo.pk else None
    if stored and repo.gitlab_project_id and stored != {
            "gitlab_url": repo.gitlab_url, "gitlab_project": repo.gitlab_project}:
        # The link made before belongs to another project: link again to get a hook there.
        repo.gitlab_project_id = repo.gitlab_hook_id = None
        repo.gitlab_status = ""
        repo.gitlab_message = ("GitLab URL or project changed: link again (the webhook of the "
                               "project linked before was left in place)")
    return audit.save_recorded(repo, "repository", REPOSITORY_FIELDS)


def delete_repository(repo: Repository) -> None:
    """Delete a repository no application uses (ProtectedError otherwise)."""
    pk, url = repo.pk, repo.url
    repo.delete()
    audit.record("repository.deleted", None, object_type="repository", object_name=url,
                 details={"id": pk})


# --- GitLab link (gitlab.py) -------------------------------------------------------------------
def link_gitlab(repo: Repository) -> bool:
    """Check the stored GitLab token (scope api), find the project and create or update its
    webhook to us (push and tag push events, the repository's webhook secret, which is made
    here if there is none). The outcome is kept on the repository (gitlab_status/_message)."""
    from . import gitlab  # python-gitlab is loaded only by the processes that talk to GitLab

    if not repo.webhook_secret:
        repo.webhook_secret = secrets.token_urlsafe(32)
        save_repository(repo)
    try:
        link = gitlab.link(repo.gitlab_url, repo.gitlab_token, repo.gitlab_project,
                           repo.webhook_secret,
                           known=(repo.gitlab_project_id, repo.gitlab_hook_id))
    except gitlab.GitLabError as exc:
        _set_gitlab_state(repo, status="Failed", message=str(exc))
        return False
    _set_gitlab_state(repo, status="Linked", message="", gitlab_project_id=link.project_id,
                      gitlab_hook_id=link.hook_id)
    audit.record("repository.gitlab_linked", repo, details={
        "gitlab_url": repo.gitlab_url, "project": link.project_path, "hook": link.hook_id})
    return True


def unlink_gitlab(repo: Repository) -> bool:
    """Delete our webhook from the GitLab project and forget the link (the URL, project and
    token stay, to link again). False, with the cause kept, when GitLab refused."""
    from . import gitlab

    if repo.gitlab_hook_id and repo.gitlab_project_id:
        try:
            gitlab.delete_hook(repo.gitlab_url, repo.gitlab_token, repo.gitlab_project_id,
                               repo.gitlab_hook_id)
        except gitlab.GitLabError as exc:
            _set_gitlab_state(repo, status="Failed", message=f"unlinking: {exc}")
            return False
    _set_gitlab_state(repo, status="", message="", gitlab_project_id=None, gitlab_hook_id=None)
    audit.record("repository.gitlab_unlinked", repo, details={"gitlab_url": repo.gitlab_url})
    return True


def _set_gitlab_state(repo: Repository, status: str, message: str, **fields) -> None:
    values = {"gitlab_status": status, "gitlab_message": message, **fields}
    Repository.objects.filter(pk=repo.pk).update(**values)
    for name, value in values.items():
        setattr(repo, name, value)
