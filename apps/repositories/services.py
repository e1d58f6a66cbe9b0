"""Repository actions: credentials, the shared clone cache, revisions and checkouts."""
from __future__ import annotations

import hashlib
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


def resolve(repo: Repository, revision: str, known_refs: dict | None = None) -> str:
    return repo_cache().resolve(repo.url, revision, credentials(repo), refs=known_refs)


def checkout(repo: Repository, sha: str, paths: list[str] | None = None) -> Path:
    """Commit `sha`'s files: only `paths` and what they refer to when given (RepoCache.checkout)."""
    return repo_cache().checkout(repo.url, sha, credentials(repo), paths=paths)


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
                     "webhook_secret")


def save_repository(repo: Repository) -> Repository:
    """Create or edit a repository (values already validated); the audit log gets what changed,
    the password and webhook secret only as "(changed)"."""
    return audit.save_recorded(repo, "repository", REPOSITORY_FIELDS)


def delete_repository(repo: Repository) -> None:
    """Delete a repository no application uses (ProtectedError otherwise)."""
    pk, url = repo.pk, repo.url
    repo.delete()
    audit.record("repository.deleted", None, object_type="repository", object_name=url,
                 details={"id": pk})
