"""A repository's GitLab project, through python-gitlab: the token's scope, the project webhook
that announces pushes and tags to us, and the commit statuses builds report back.

The base URL a user typed reaches python-gitlab only after `gitlab_base_url` (the repositories
app's URL validation, http(s) only), and the token only as python-gitlab's PRIVATE-TOKEN header:
no message, log line or exception made here repeats it.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import gitlab
import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.urls import reverse

from .models import Repository, gitlab_base_url

log = logging.getLogger(__name__)

REQUIRED_SCOPE = "api"  # hooks and commit statuses are written through the API
STATES = ("pending", "running", "success", "failed", "canceled")
STATUS_NAME = "gitops-ui"
COMMIT_SHA = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")
TIMEOUT = 10  # seconds per call: GitLab down must not hold a worker


class GitLabError(Exception):
    """GitLab refused or could not be reached; the message names the cause, never the token."""


@dataclass(frozen=True)
class Link:
    project_id: int
    project_path: str
    hook_id: int


def client(base_url: str, token: str) -> gitlab.Gitlab:
    try:
        gitlab_base_url(base_url)
    except ValidationError as exc:
        raise GitLabError(f"GitLab URL: {' '.join(exc.messages)}") from None
    if not token:
        raise GitLabError("no GitLab token: enter an access token with the scope api")
    return gitlab.Gitlab(base_url.strip().rstrip("/"), private_token=token, timeout=TIMEOUT,
                         ssl_verify=True, retry_transient_errors=False, keep_base_url=True)


def webhook_url() -> str:
    """Where GitLab sends pushes: GITOPS_UI_PUBLIC_URL (this server as GitLab reaches it)."""
    public = settings.GITOPS_UI_PUBLIC_URL
    parts = urlsplit(public)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GitLabError("GITOPS_UI_PUBLIC_URL is not set to this server's http(s) address as "
                          "GitLab reaches it, e.g. https://gitops.example.com")
    return public.rstrip("/") + reverse("webhook-git")


def check_token(gl: gitlab.Gitlab) -> None:
    """The token is valid, active and has the scope `api` (GET /personal_access_tokens/self)."""
    token = _call(gl, "check the token", lambda: gl.personal_access_tokens.get("self"))
    scopes = list(getattr(token, "scopes", None) or [])
    if getattr(token, "active", True) is False or getattr(token, "revoked", False):
        raise GitLabError("the GitLab token is revoked or expired")
    if REQUIRED_SCOPE not in scopes:
        raise GitLabError(f"the GitLab token lacks the scope {REQUIRED_SCOPE!r} (it has: "
                          f"{', '.join(scopes) or 'none'}); create one with the scope api")


def find_project(gl: gitlab.Gitlab, project: str):
    ref = project.strip().strip("/")
    if not ref:
        raise GitLabError("no GitLab project: enter its path (team/deploy) or numeric id")
    return _call(gl, f"find the project {ref!r}", lambda: gl.projects.get(
        int(ref) if ref.isdigit() else ref))


def ensure_hook(gl: gitlab.Gitlab, project, url: str, secret: str,
                known_hook_id: int | None) -> int:
    """Create the project's webhook to `url`, or update the one we made before (by id, else by
    URL), so linking again never leaves a second hook; other copies pointing at `url` go."""
    attrs = {"url": url, "push_events": True, "tag_push_events": True, "token": secret,
             "enable_ssl_verification": True}
    hooks = _call(gl, "list the project's webhooks", lambda: project.hooks.list(get_all=True))
    ours = [h for h in hooks if h.id == known_hook_id] or [h for h in hooks if h.url == url]
    if not ours:
        return _call(gl, "create the webhook", lambda: project.hooks.create(attrs)).id
    keep, extra = ours[0], [h for h in hooks if h.url == url and h.id != ours[0].id]
    _call(gl, "update the webhook", lambda: project.hooks.update(keep.id, attrs))
    for hook in extra:
        _call(gl, "delete a duplicate webhook", lambda: project.hooks.delete(hook.id))
    return keep.id


def link(base_url: str, token: str, project: str, secret: str,
         known: tuple[int | None, int | None] = (None, None)) -> Link:
    """`known`: (project id, hook id) of the link made before, if any."""
    url = webhook_url()
    gl = client(base_url, token)
    check_token(gl)
    found = find_project(gl, project)
    # A hook id means something only in the project it was made in.
    hook_id = ensure_hook(gl, found, url, secret, known[1] if known[0] == found.id else None)
    return Link(project_id=found.id, project_path=found.path_with_namespace, hook_id=hook_id)


def delete_hook(base_url: str, token: str, project_id: int, hook_id: int) -> None:
    """Remove our webhook; one already gone counts as removed."""
    gl = client(base_url, token)
    project = gl.projects.get(project_id, lazy=True)
    try:
        _call(gl, "delete the webhook", lambda: project.hooks.delete(hook_id))
    except _NotFound:
        pass


def report_commit_status(repository: Repository, sha: str, state: str, target_url: str = "",
                         description: str = "") -> bool:
    """Set `state` on commit `sha` in the repository's GitLab project (a build's progress).

    True when GitLab holds that state (a repeated identical state, which GitLab answers 400
    "Cannot transition status via :run from :running", counts as done); False when the
    repository is not linked or GitLab refused, which is logged (never with the token): a build
    does not fail because its status could not be reported.
    """
    if state not in STATES:
        raise ValueError(f"commit status {state!r} is not one of {', '.join(STATES)}")
    if not COMMIT_SHA.match(sha or ""):  # it becomes part of the request's path
        raise ValueError(f"not a commit sha: {sha!r}")
    if not (repository.gitlab_url and repository.gitlab_token and repository.gitlab_project_id):
        return False
    data = {"state": state, "name": STATUS_NAME}
    if target_url:
        data["target_url"] = target_url
    if description:
        data["description"] = description[:255]
    try:
        gl = client(repository.gitlab_url, repository.gitlab_token)
        commit = gl.projects.get(repository.gitlab_project_id, lazy=True).commits.get(
            sha, lazy=True)
        commit.statuses.create(data)
        return True
    except gitlab.GitlabError as exc:
        if exc.response_code == 400 and "cannot transition status" in str(
                exc.error_message).lower():
            return True
        log.warning("commit status %s of %s not reported to GitLab (%s): %s", state, sha[:12],
                    repository.url, _reason(exc))
    except (GitLabError, requests.RequestException) as exc:
        log.warning("commit status %s of %s not reported to GitLab (%s): %s", state, sha[:12],
                    repository.url, exc if isinstance(exc, GitLabError) else _unreachable(exc))
    return False


class _NotFound(GitLabError):
    pass


def _call(gl: gitlab.Gitlab, what: str, fn):
    try:
        return fn()
    except gitlab.GitlabAuthenticationError:
        raise GitLabError(f"GitLab at {_host(gl)} refused the token (401) when asked to {what}: "
                          "wrong, revoked or expired") from None
    except gitlab.GitlabError as exc:
        cls = _NotFound if exc.response_code == 404 else GitLabError
        if exc.response_code == 404:
            raise cls(f"cannot {what}: not found on GitLab at {_host(gl)}, or the token may not "
                      "see it (404)") from None
        if exc.response_code == 403:
            raise cls(f"cannot {what}: GitLab at {_host(gl)} forbids it to this token (403; "
                      "it needs the Maintainer role on the project)") from None
        raise cls(f"cannot {what}: {_reason(exc)}") from None
    except requests.RequestException as exc:
        raise GitLabError(f"cannot {what}: {_unreachable(exc)} ({_host(gl)})") from None


def _reason(exc: gitlab.GitlabError) -> str:
    return f"GitLab answered {exc.response_code}: {str(exc.error_message)[:300]}"


def _unreachable(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS verification of GitLab failed"
    if isinstance(exc, requests.Timeout):
        return f"GitLab did not answer within {TIMEOUT} s"
    return "GitLab cannot be reached"


def _host(gl: gitlab.Gitlab) -> str:
    return urlsplit(gl.url).netloc
