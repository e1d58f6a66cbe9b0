"""A client of Harbor's REST API v2.0: projects, artifacts with their tags and scan overview,
robot accounts for pulls. Plain Python on requests, no Django; basic auth on every request and
no cookies (Harbor refuses writes from a cookie session without its CSRF token).

Errors are the OCI client's RegistryError subclasses; messages carry no credential, and a robot
account's secret is only ever returned to the caller.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote

import requests

from .oci import HTTPClient, NotFound, RegistryError, Unauthorized, Unreachable, check_repository

API = "/api/v2.0"
PAGE_SIZE = 100


@dataclass(frozen=True)
class Artifact:
    digest: str
    tags: list[str]
    push_time: str
    media_type: str
    size: int
    # report type -> {"scan_status", "severity", "summary": {"total", "fixable", "summary": {...}}}
    scan_overview: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RobotAccount:
    """A robot account just created: `secret` is Harbor's only copy to us, shown once."""

    id: int
    name: str
    secret: str = field(repr=False)
    expires_at: int = -1


class HarborClient(HTTPClient):
    def __init__(self, url: str, username: str, password: str, **options):
        super().__init__(url, **options)
        self._auth = (username, password)

    # --- projects -------------------------------------------------------------------------
    def project(self, name: str) -> dict | None:
        """The project named exactly `name` (Harbor's `name` filter also matches partly)."""
        projects = self._json("GET", "/projects", params={"name": name, "page_size": PAGE_SIZE},
                              what=f"project {name}")
        return next((p for p in projects or [] if p.get("name") == name), None)

    def ensure_project(self, name: str, public: bool = False) -> dict:
        """The project `name`, created (private unless `public`) if it does not exist."""
        check_repository(name)
        found = self.project(name)
        if found is not None:
            return found
        response = self._request("POST", "/projects", what=f"creating project {name}", json={
            "project_name": name, "metadata": {"public": "true" if public else "false"}},
            conflict_ok=True)  # 409: created meanwhile by someone else, which is as good
        found = self.project(name)
        if found is None:
            raise RegistryError(f"{self.name}: project {name} was not there after creating it "
                                f"({response.status_code})")
        return found

    # --- artifacts ------------------------------------------------------------------------
    def artifacts(self, project: str, repository: str) -> list[Artifact]:
        """The artifacts of `project/repository`, newest first, with tags and scan overview."""
        check_repository(project)
        check_repository(repository)
        # Harbor decodes the path once before routing: a '/' in the name must arrive as %2F.
        path = (f"/projects/{quote(project, safe='')}/repositories/"
                f"{quote(quote(repository, safe=''), safe='')}/artifacts")
        found: list[Artifact] = []
        page = 1
        while True:
            batch = self._json("GET", path, what=f"artifacts of {project}/{repository}", params={
                "with_tag": "true", "with_scan_overview": "true", "page": page,
                "page_size": PAGE_SIZE})
            found.extend(_artifact(item) for item in batch or [])
            if not batch or len(batch) < PAGE_SIZE:
                return found
            page += 1

    # --- robot accounts -------------------------------------------------------------------
    def create_pull_robot(self, name: str, project: str, duration_days: int = -1,
                          description: str = "") -> RobotAccount:
        """A project-level robot account that may pull the project's repositories; Harbor
        returns its secret once, here, and never again."""
        check_repository(project)
        body = self._json("POST", "/robots", what=f"creating robot account {name}", json={
            "name": name, "description": description, "duration": duration_days,
            "level": "project", "disable": False,
            "permissions": [{"kind": "project", "namespace": project, "access": [
                {"resource": "repository", "action": "pull"}]}]})
        if not isinstance(body, dict) or not body.get("secret"):
            raise RegistryError(f"{self.name} created robot account {name} without a secret")
        return RobotAccount(id=int(body.get("id") or 0), name=str(body.get("name", name)),
                            secret=body["secret"], expires_at=int(body.get("expires_at", -1)))

    # --- HTTP -----------------------------------------------------------------------------
    def _json(self, method: str, path: str, *, what: str, **kwargs):
        response = self._request(method, path, what=what, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise RegistryError(f"{self.name} answered {what} with something other than JSON") \
                from None

    def _request(self, method: str, path: str, *, what: str, conflict_ok: bool = False,
                 **kwargs) -> requests.Response:
        try:
            response = self.session.request(method, f"{self.url}{API}{path}", auth=self._auth,
                                            timeout=self.timeout, allow_redirects=False,
                                            headers={"Accept": "application/json"}, **kwargs)
        except requests.exceptions.SSLError:
            raise Unreachable(f"TLS handshake with {self.name} failed ({what})") from None
        except requests.RequestException as exc:
            raise Unreachable(f"cannot reach {self.name} ({what}): {type(exc).__name__}") from None
        if response.status_code == 401:
            raise Unauthorized(f"{self.name} refused the credentials ({what}, 401)")
        if response.status_code == 403:
            raise Unauthorized(f"{self.name} denied {what} to this account (403)")
        if response.status_code == 404:
            raise NotFound(f"{self.name}: not found ({what})")
        if response.status_code == 409 and conflict_ok:
            return response
        if response.status_code >= 300:
            raise RegistryError(f"{self.name} answered {response.status_code} to {what}"
                                f"{_harbor_codes(response)}")
        return response


def _artifact(item: dict) -> Artifact:
    return Artifact(digest=item.get("digest", ""),
                    tags=[t.get("name", "") for t in item.get("tags") or []],
                    push_time=item.get("push_time", ""), media_type=item.get("media_type", ""),
                    size=int(item.get("size") or 0), scan_overview=item.get("scan_overview") or {})


def _harbor_codes(response: requests.Response) -> str:
    """Harbor's error codes (`{"errors": [{"code": "CONFLICT", "message": ...}]}`)."""
    try:
        codes = [e.get("code") for e in response.json().get("errors", []) if e.get("code")]
    except (ValueError, AttributeError):
        return ""
    return f": {', '.join(str(c)[:40] for c in codes[:3])}" if codes else ""
