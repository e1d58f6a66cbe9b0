"""Harbor's REST API v2.0, emulated (Harbor itself cannot run here), in front of the stack's REAL
registry, as Harbor's core sits in front of its distribution registry.

From Harbor's swagger (api/v2.0/swagger.yaml) and its token service docs, only what the product
calls: `GET/POST /api/v2.0/projects` (`project_name`, `metadata.public` as a string), artifacts of
a repository with `tags[].name` and `scan_overview` (read from the real registry: a project is the
first path segment of a repository there), `POST /api/v2.0/robots` (`name`, `level`,
`permissions[].{kind,namespace,access[]}`, answered with `name` = `robot$<project>+<name>` and a
`secret` given once), errors as `{"errors": [{"code", "message"}]}`, basic auth (users and robot
accounts). `/service/token` issues bearer tokens and `/v2/` asks for them with the
`WWW-Authenticate: Bearer realm=...,service="harbor-registry",scope=...` challenge, then proxies
to the real registry, so the OCI client's bearer flow runs against real manifests and tags.
Repository names with '/' must come encoded twice (Harbor decodes the path before routing).
"""
from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import requests

SERVICE = "harbor-registry"
SCAN_REPORT = "application/vnd.security.vulnerability.report; version=1.1"
ACCEPT_MANIFESTS = ", ".join([
    "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json"])


class HarborEmulator:
    def __init__(self, registry):
        self.registry = registry  # the stack's real docker-registry
        self.username = "admin"
        self.password = secrets.token_hex(12)
        self.projects: dict[str, dict] = {}
        self.robots: dict[str, dict] = {}  # full name -> {"secret", "permissions", ...}
        self.tokens: dict[str, set[str]] = {}  # token -> granted "repository:<name>" scopes
        self.scan_reports: dict[str, dict] = {}  # digest -> summary, as a scanner would leave it
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, headers) received
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> "HarborEmulator":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- state ----------------------------------------------------------------------------
    def account(self, header: str | None) -> str | None:
        """The user or robot a basic Authorization header proves, or None."""
        if not header or not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return None
        if user == self.username and secrets.compare_digest(password, self.password):
            return user
        robot = self.robots.get(user)
        if robot and secrets.compare_digest(password, robot["secret"]):
            return user
        return None

    def may_pull(self, account: str, repository: str) -> bool:
        if account == self.username:
            return True
        project = repository.split("/", 1)[0]
        return any(p["kind"] == "project" and p["namespace"] == project and any(
            a.get("resource") == "repository" and a.get("action") == "pull" for a in p["access"])
            for p in self.robots[account]["permissions"])

    def create_project(self, body: dict) -> tuple[int, dict | None]:
        name = body.get("project_name")
        metadata = body.get("metadata") or {}
        if not isinstance(name, str) or not name or not isinstance(metadata, dict) or any(
                not isinstance(v, str) for v in metadata.values()):
            return 400, _error("BAD_REQUEST", "project_name required; metadata values are strings")
        with self._lock:
            if name in self.projects:
                return 409, _error("CONFLICT", f"The project named {name} already exists")
            self.projects[name] = {
                "project_id": len(self.projects) + 1, "name": name, "owner_name": self.username,
                "creation_time": _now(), "update_time": _now(), "repo_count": 0,
                "metadata": {"public": metadata.get("public", "false")}}
        return 201, None

    def create_robot(self, body: dict) -> tuple[int, dict]:
        name, level, permissions = body.get("name"), body.get("level"), body.get("permissions")
        if not name or level not in ("system", "project") or not isinstance(permissions, list):
            return 400, _error("BAD_REQUEST", "name, level and permissions are required")
        if level == "project":
            if len(permissions) != 1 or permissions[0].get("namespace") not in self.projects:
                return 400, _error("BAD_REQUEST", "a project robot names one existing project")
            full = f"robot${permissions[0]['namespace']}+{name}"
        else:
            full = f"robot${name}"
        with self._lock:
            if full in self.robots:
                return 409, _error("CONFLICT", f"robot account {full} already exists")
            robot_id = len(self.robots) + 1
            secret = secrets.token_urlsafe(24)
            self.robots[full] = {"id": robot_id, "secret": secret, "permissions": permissions,
                                 "duration": body.get("duration", -1)}
        return 201, {"id": robot_id, "name": full, "secret": secret, "creation_time": _now(),
                     "expires_at": -1}

    def artifacts(self, project: str, repository: str, with_tag: bool, with_scan: bool):
        """Tags of <project>/<repository> in the real registry, grouped by manifest digest."""
        auth = (self.registry.username, self.registry.password)
        base = f"{self.registry.url}/v2/{project}/{repository}"
        listed = requests.get(f"{base}/tags/list", auth=auth, timeout=10)
        if listed.status_code == 404:
            return None
        by_digest: dict[str, dict] = {}
        for tag in sorted(listed.json().get("tags") or []):
            head = requests.head(f"{base}/manifests/{tag}", auth=auth, timeout=10,
                                 headers={"Accept": ACCEPT_MANIFESTS})
            digest = head.headers["Docker-Content-Digest"]
            item = by_digest.setdefault(digest, {
                "id": len(by_digest) + 1, "type": "IMAGE", "digest": digest,
                "media_type": head.headers.get("Content-Type", ""),
                "manifest_media_type": head.headers.get("Content-Type", ""),
                "project_id": self.projects[project]["project_id"], "repository_id": 1,
                "size": int(head.headers.get("Content-Length") or 0), "push_time": _now(),
                "pull_time": "0001-01-01T00:00:00.000Z", "extra_attrs": {}, "annotations": None,
                "references": None, "labels": None, "addition_links": {}, "tags": []})
            item["tags"].append({"id": len(item["tags"]) + 1, "repository_id": 1,
                                 "artifact_id": item["id"], "name": tag, "push_time": _now(),
                                 "pull_time": "0001-01-01T00:00:00.000Z", "immutable": False})
        found = list(by_digest.values())
        for item in found:
            if not with_tag:
                item.pop("tags")
            if with_scan and item["digest"] in self.scan_reports:
                item["scan_overview"] = {SCAN_REPORT: self.scan_reports[item["digest"]]}
        return found


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def _error(code: str, message: str) -> dict:
    return {"errors": [{"code": code, "message": message}]}


def _handler(harbor: HarborEmulator):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet: the tests read `harbor.requests` instead
            pass

        def _reply(self, status: int, body=None, headers: dict | None = None, raw: bytes = b""):
            data = json.dumps(body).encode() if body is not None else raw
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _body(self) -> dict:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                return json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                return {}

        def do_GET(self):
            self._route()

        def do_HEAD(self):
            self._route()

        def do_POST(self):
            self._route()

        def _route(self):
            harbor.requests.append((self.command, self.path, dict(self.headers)))
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if parts.path.startswith("/v2/"):
                return self._registry(parts.path, parts.query)
            if parts.path == "/service/token":
                return self._token(query)
            account = harbor.account(self.headers.get("Authorization"))
            if account is None:
                return self._reply(401, _error("UNAUTHORIZED", "unauthorized"))
            # Harbor decodes the path once, then routes: a '/' sent encoded once splits it.
            segments = unquote(parts.path).split("/")
            if segments[:3] != ["", "api", "v2.0"]:
                return self._reply(404, _error("NOT_FOUND", "not found"))
            route = segments[3:]
            admin = account == harbor.username
            if route == ["projects"] and self.command == "GET":
                name = query.get("name", "")
                return self._reply(200, [p for p in harbor.projects.values() if name in p["name"]],
                                   {"X-Total-Count": str(len(harbor.projects))})
            if route == ["projects"] and self.command == "POST":
                if not admin:
                    return self._reply(403, _error("FORBIDDEN", "forbidden"))
                status, error = harbor.create_project(self._body())
                return self._reply(status, error, {"Location": "/api/v2.0/projects/1"}
                                   if status == 201 else None)
            if route == ["robots"] and self.command == "POST":
                if not admin:
                    return self._reply(403, _error("FORBIDDEN", "forbidden"))
                status, body = harbor.create_robot(self._body())
                return self._reply(status, body)
            if (len(route) == 5 and route[0] == "projects" and route[2] == "repositories"
                    and route[4] == "artifacts" and self.command == "GET"):
                project, repository = route[1], unquote(route[3])
                if project not in harbor.projects:
                    return self._reply(404, _error("NOT_FOUND", f"project {project} not found"))
                if not (admin or harbor.may_pull(account, f"{project}/{repository}")):
                    return self._reply(403, _error("FORBIDDEN", "forbidden"))
                found = harbor.artifacts(project, repository, query.get("with_tag") == "true",
                                         query.get("with_scan_overview") == "true")
                if found is None:
                    return self._reply(404, _error("NOT_FOUND", "repository not found"))
                size = int(query.get("page_size", 10))
                page = int(query.get("page", 1))
                return self._reply(200, found[(page - 1) * size:page * size],
                                   {"X-Total-Count": str(len(found))})
            return self._reply(404, _error("NOT_FOUND", "not found"))

        def _token(self, query: dict):
            account = harbor.account(self.headers.get("Authorization"))
            if account is None or query.get("service") != SERVICE:
                return self._reply(401, _error("UNAUTHORIZED", "unauthorized"))
            granted = set()
            scope = query.get("scope", "")
            if scope.startswith("repository:"):
                repository = scope.split(":")[1]
                if harbor.may_pull(account, repository):
                    granted.add(f"repository:{repository}")
            token = secrets.token_urlsafe(32)
            harbor.tokens[token] = granted
            return self._reply(200, {"token": token, "expires_in": 1800, "issued_at": _now()})

        def _registry(self, path: str, raw_query: str):
            repository = path[4:].rsplit("/", 2)[0] if path != "/v2/" else ""
            scope = f"repository:{repository}" if repository else ""
            header = self.headers.get("Authorization", "")
            token = header[7:] if header.startswith("Bearer ") else None
            granted = harbor.tokens.get(token) if token else None
            if granted is None or (scope and scope not in granted):
                challenge = f'Bearer realm="{harbor.url}/service/token",service="{SERVICE}"'
                if scope:
                    challenge += f',scope="{scope}:pull"'
                return self._reply(401, _error("UNAUTHORIZED", "unauthorized"),
                                   {"WWW-Authenticate": challenge})
            target = f"{harbor.registry.url}{path}" + (f"?{raw_query}" if raw_query else "")
            upstream = requests.request(
                self.command, target,
                auth=(harbor.registry.username, harbor.registry.password), timeout=10,
                headers={"Accept": self.headers.get("Accept", "*/*")})
            headers = {k: v for k, v in upstream.headers.items()
                       if k in ("Content-Type", "Docker-Content-Digest", "Link")}
            query = {k: v[0] for k, v in parse_qs(raw_query).items()}
            if path.endswith("/tags/list") and upstream.ok and "n" in query:
                return self._tag_page(path, upstream.json(), query, headers)
            self.send_response(upstream.status_code)
            for key, value in headers.items():
                self.send_header(key, value)
            length = upstream.headers.get("Content-Length") if self.command == "HEAD" else None
            self.send_header("Content-Length", length or str(len(upstream.content)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(upstream.content)

        def _tag_page(self, path: str, listed: dict, query: dict, headers: dict):
            """Harbor pages tag lists itself (distribution 2.x does not): sorted, `n` per page
            after `last`, and a Link to the next page while there is one."""
            size = int(query["n"])
            tags = sorted(t for t in listed.get("tags") or [] if t > query.get("last", ""))
            page = tags[:size]
            if len(tags) > size:
                headers["Link"] = f'<{path}?n={size}&last={page[-1]}>; rel="next"'
            body = json.dumps({"name": listed.get("name"), "tags": page}).encode()
            headers["Content-Type"] = "application/json"
            return self._reply(200, headers=headers, raw=body)

    return Handler
