"""What a git webhook request says: which repository and ref were pushed, the token it carries,
and the delivery's id.

GitLab sends X-Gitlab-Event ("Push Hook", "Tag Push Hook", ...) and X-Gitlab-Token, with the
repository in project.git_http_url (repository.git_http_url in older payloads), the pushed ref
in `ref` (refs/heads/x or refs/tags/y; a deletion too) and project.default_branch. The generic
form is JSON {"repository": "<url>"} or {"repository": {"url": "<url>"}}, or a form field url=,
optionally with "ref" (and "default_branch"); its token comes in ?token= or X-Gitlab-Token.
A delivery is named by Idempotency-Key or X-Gitlab-Event-UUID; a repeated one is handled once.
"""
from dataclasses import dataclass

from apps.core.api.exceptions import BadRequest

GITLAB_PUSH_EVENTS = ("Push Hook", "Tag Push Hook")
DELIVERY_HEADERS = ("Idempotency-Key", "X-Gitlab-Event-UUID")


@dataclass
class Push:
    url: str = ""
    token: str | None = None
    ref: str = ""  # refs/heads/x or refs/tags/y; empty: not said (every app of the repository)
    default_branch: str = ""
    delivery: str = ""
    after: str = ""  # GitLab's `after`: the sha the ref points at now, when the sender says
    ignored: str = ""  # why nothing is to be done (an event that is not a push)


def parse(request) -> Push:
    token = request.headers.get("X-Gitlab-Token") or request.query_params.get("token")
    event = request.headers.get("X-Gitlab-Event")
    data = request.data  # ParseError (400) on a body that is not what its Content-Type says
    if not hasattr(data, "get"):
        raise BadRequest("the body must be a JSON object or a form")
    if event is not None:
        if not _is_gitlab_push(event, data):
            return Push(ignored=f"GitLab event {event!r} ignored: only push and tag push "
                                "events refresh")
        url = _gitlab_url(event, data)
    else:
        url = data.get("repository") or data.get("url")
        if isinstance(url, dict):
            url = url.get("url")
        if not isinstance(url, str) or not url.strip():
            raise BadRequest('no repository URL: send {"repository": "<url>"}, '
                             '{"repository": {"url": "<url>"}} or the form field url, '
                             'or a GitLab push event (X-Gitlab-Event: Push Hook)')
    delivery = next((request.headers[h] for h in DELIVERY_HEADERS if request.headers.get(h)), "")
    after = data.get("after")
    return Push(url.strip(), token, ref=_ref(data), default_branch=_default_branch(data),
                delivery=delivery.strip(), after=after.lower() if isinstance(after, str) else "")


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


def _ref(data) -> str:
    ref = data.get("ref")
    if ref is None or ref == "":
        return ""
    if not isinstance(ref, str) or not ref.startswith(("refs/heads/", "refs/tags/")):
        raise BadRequest("ref must be a full ref name: refs/heads/<branch> or refs/tags/<tag>")
    return ref


def _default_branch(data) -> str:
    for section in (data.get("project"), data.get("repository"), data):
        if isinstance(section, dict) and isinstance(section.get("default_branch"), str):
            return section["default_branch"]
    return ""
