"""What a git webhook request says: which repository was pushed to, and the token it carries.

GitLab sends X-Gitlab-Event ("Push Hook", "Tag Push Hook", ...) and X-Gitlab-Token, with the
repository in project.git_http_url (repository.git_http_url in older payloads). The generic form
is JSON {"repository": "<url>"} or {"repository": {"url": "<url>"}}, or a form field url=; its
token comes in ?token= or X-Gitlab-Token.
"""
from dataclasses import dataclass

from apps.core.api.exceptions import BadRequest

GITLAB_PUSH_EVENTS = ("Push Hook", "Tag Push Hook")


@dataclass
class Push:
    url: str = ""
    token: str | None = None
    ignored: str = ""  # why nothing is to be done (an event that is not a push)


def parse(request) -> Push:
    token = request.headers.get("X-Gitlab-Token") or request.query_params.get("token")
    event = request.headers.get("X-Gitlab-Event")
    data = request.data  # ParseError (400) on a body that is not what its Content-Type says
    if not hasattr(data, "get"):
        raise BadRequest("the body must be a JSON object or a form")
    if event is not None:
        return Push(_gitlab_url(event, data), token) if _is_gitlab_push(event, data) else Push(
            ignored=f"GitLab event {event!r} ignored: only push and tag push events refresh")
    url = data.get("repository") or data.get("url")
    if isinstance(url, dict):
        url = url.get("url")
    if not isinstance(url, str) or not url.strip():
        raise BadRequest('no repository URL: send {"repository": "<url>"}, '
                         '{"repository": {"url": "<url>"}} or the form field url, '
                         'or a GitLab push event (X-Gitlab-Event: Push Hook)')
    return Push(url.strip(), token)


def _is_gitlab_push(event: str, data) -> bool:
    if event == "System Hook":  # instance-wide hooks name the event in the body
        return data.get("event_name") in ("push", "tag_push")
    return event in GITLAB_PUSH_EVENTS


def _gitlab_url(event: str, data) -> str:
    for part in ("project", "repository"):
        section = data.get(part)
        if isinstance(section, dict) and isinstance(section.get("git_http_url"), str):
            return section["git_http_url"]
    raise BadRequest(f"GitLab {event!r} without project.git_http_url: not a push event payload")
