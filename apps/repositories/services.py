"""Repository actions: credentials, the shared clone cache, revisions and checkouts."""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings

from apps.engine.errors import SourceError
from apps.engine.source import GitCredentials, RepoCache

from .models import Repository


@lru_cache(maxsize=1)
def repo_cache() -> RepoCache:
    # Every process (web, workers) shares the folders, so the secret derives from a shared key.
    secret = hashlib.sha256(b"checkout-paths:" + settings.ENCRYPTION_KEY.encode()).digest()
    return RepoCache(Path(settings.DATA_DIR) / "repos", path_secret=secret)


def credentials(repo: Repository) -> GitCredentials:
    return GitCredentials(username=repo.username, password=repo.password)


def normalise_url(url: str) -> str:
    """The form two spellings of one repository share (scheme, case of host, .git, slash)."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower() + (f":{parts.port}" if parts.port else "")
    path = parts.path.rstrip("/")
    path = path[:-4] if path.endswith(".git") else path
    return f"{host}{path}"


def refs(repo: Repository) -> dict[str, str]:
    return repo_cache().ls_remote(repo.url, credentials(repo))


def resolve(repo: Repository, revision: str, known_refs: dict | None = None) -> str:
    return repo_cache().resolve(repo.url, revision, credentials(repo), refs=known_refs)


def checkout(repo: Repository, sha: str) -> Path:
    return repo_cache().checkout(repo.url, sha, credentials(repo))


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
