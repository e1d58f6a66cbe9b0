"""GitLab's REST API v4, emulated (GitLab itself cannot run here): only what the product calls,
from GitLab's API docs (api/projects.md, api/project_webhooks.md, api/personal_access_tokens.md,
api/commits.md "Set the pipeline status of a commit", api/rest/troubleshooting.md):

- `PRIVATE-TOKEN: <token>` (or `Authorization: Bearer <token>`); none or an unknown token:
  401 `{"message": "401 Unauthorized"}`; a token without the needed scope: 403
  `{"error": "insufficient_scope", "error_description": ..., "scope": ...}`; a project the
  token's user may not administer: 403 `{"message": "403 Forbidden"}`.
- `GET /api/v4/personal_access_tokens/self`: id, name, revoked, created_at, scopes, user_id,
  last_used_at, active, expires_at (any scope may read its own token).
- `GET /api/v4/projects/:id` (numeric id or URL-encoded path): id, name, path,
  path_with_namespace, default_branch, http_url_to_repo, web_url...; unknown:
  404 `{"message": "404 Project Not Found"}`.
- `GET/POST /api/v4/projects/:id/hooks`, `PUT/DELETE /api/v4/projects/:id/hooks/:hook_id`:
  hooks with url, push_events, tag_push_events, enable_ssl_verification...; `token` is taken and
  never returned; lists paginate (`page`, `per_page`, `X-*` headers, `Link: <...>; rel="next"`);
  unknown hook: 404 `{"message": "404 Not found"}`; DELETE answers 204.
- `POST /api/v4/projects/:id/statuses/:sha` (state pending, running, success, failed, canceled;
  name, target_url, description): 201 with the status; the same state again is refused as
  GitLab's state machine does: 400 `{"message": "Cannot transition status via :run from
  :running (Reason(s): Status cannot transition via \\"run\\")"}`.
"""
from __future__ import annotations

import itertools
import json
import secrets
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

# state -> the state machine's event that reaches it (app/models/commit_status.rb)
EVENTS = {"pending": "enqueue", "running": "run", "success": "success", "failed": "drop",
          "canceled": "cancel"}
HOOK_FIELDS = ("url", "name", "description", "push_events", "push_events_branch_filter",
               "tag_push_events", "issues_events", "merge_requests_events", "note_events",
               "job_events", "pipeline_events", "wiki_page_events", "releases_events",
               "enable_ssl_verification", "custom_webhook_template")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class GitLabEmulator:
    def __init__(self):
        self.tokens: dict[str, dict] = {}  # token -> {"scopes", "maintainer_of", ...}
        self.projects: dict[int, dict] = {}
        self.hooks: dict[int, dict[int, dict]] = {}  # project id -> hook id -> hook (with token)
        self.statuses: list[dict] = []  # every status accepted, in order
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, headers)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> "GitLabEmulator":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- state the tests set up -----------------------------------------------------------
    def add_project(self, path_with_namespace: str) -> dict:
        with self._lock:
            pid = next(self._ids)
            namespace, _, path = path_with_namespace.rpartition("/")
            project = {"id": pid, "name": path, "path": path, "description": None,
                       "name_with_namespace": path_with_namespace.replace("/", " / "),
                       "path_with_namespace": path_with_namespace, "default_branch": "main",
                       "created_at": _now(), "visibility": "private",
                       "namespace": {"id": pid + 1000, "path": namespace, "full_path": namespace,
                                     "kind": "group"},
                       "http_url_to_repo": f"{self.url}/{path_with_namespace}.git",
                       "ssh_url_to_repo": f"git@127.0.0.1:{path_with_namespace}.git",
                       "web_url": f"{self.url}/{path_with_namespace}"}
            self.projects[pid] = project
            self.hooks[pid] = {}
            return project

    def add_token(self, scopes: list[str], maintainer_of: list[int] | None = None,
                  active: bool = True) -> str:
        token = "glpat-" + secrets.token_urlsafe(15)
        with self._lock:
            self.tokens[token] = {
                "id": next(self._ids), "name": "gitops-ui", "revoked": not active,
                "created_at": _now(), "scopes": list(scopes), "user_id": 42,
                "last_used_at": None, "active": active, "expires_at": None,
                "maintainer_of": set(self.projects if maintainer_of is None else maintainer_of)}
        return token

    def project_hooks(self, project_id: int) -> list[dict]:
        with self._lock:
            return [dict(h) for h in self.hooks[project_id].values()]

    # --- handling -------------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, headers: dict, body: bytes):
        """(status, json body or None, extra headers)."""
        parts = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        segments = [unquote(s) for s in parts.path.split("/")[1:]]
        if segments[:2] != ["api", "v4"]:
            return 404, {"error": "404 Not Found"}, {}
        segments = segments[2:]
        token = self._token(headers)
        if token is None:
            return 401, {"message": "401 Unauthorized"}, {}
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            return 400, {"error": "The provided content-type 'application/json' is not "
                                  "supported or the body is not valid JSON"}, {}
        if data and not isinstance(data, dict):
            return 400, {"error": "body must be an object"}, {}
        if segments == ["personal_access_tokens", "self"] and method == "GET":
            return 200, {k: v for k, v in token.items() if k != "maintainer_of"}, {}
        if len(segments) >= 2 and segments[0] == "projects":
            return self._project_call(method, segments[1], segments[2:], token, data, query)
        return 404, {"error": "404 Not Found"}, {}

    def _token(self, headers: dict) -> dict | None:
        value = headers.get("private-token") or ""
        auth = headers.get("authorization") or ""
        if not value and auth.startswith("Bearer "):
            value = auth[7:]
        for known, info in self.tokens.items():
            if value and secrets.compare_digest(value, known):
                return info if info["active"] else None
        return None

    def _project_call(self, method, ref, rest, token, data, query):
        writes = method != "GET"
        needed = ["api"] if writes else ["api", "read_api"]
        if not set(needed) & set(token["scopes"]):
            return 403, {"error": "insufficient_scope",
                         "error_description": "The request requires higher privileges than "
                                              "provided by the access token.",
                         "scope": " ".join(needed)}, {}
        with self._lock:
            project = next((p for p in self.projects.values()
                            if str(p["id"]) == ref or p["path_with_namespace"] == ref), None)
            if project is None:
                return 404, {"message": "404 Project Not Found"}, {}
            pid = project["id"]
            if not rest and method == "GET":
                return 200, project, {}
            if pid not in token["maintainer_of"]:
                return 403, {"message": "403 Forbidden"}, {}
            if rest and rest[0] == "hooks":
                return self._hooks(method, pid, rest[1:], data, query)
            if len(rest) == 2 and rest[0] == "statuses" and method == "POST":
                return self._status(pid, rest[1], data, token)
        return 404, {"error": "404 Not Found"}, {}

    def _hooks(self, method, pid, rest, data, query):
        hooks = self.hooks[pid]
        if not rest and method == "GET":
            items = sorted(hooks.values(), key=lambda h: h["id"])
            return _page(items, query, f"{self.url}/api/v4/projects/{pid}/hooks")
        if not rest and method == "POST":
            if not data.get("url"):
                return 400, {"error": "url is missing"}, {}
            hook = {"id": next(self._ids), "project_id": pid, "created_at": _now(),
                    "push_events": True, "tag_push_events": False, "issues_events": False,
                    "merge_requests_events": False, "note_events": False, "job_events": False,
                    "pipeline_events": False, "wiki_page_events": False,
                    "releases_events": False, "enable_ssl_verification": True,
                    "push_events_branch_filter": None, "name": None, "description": None,
                    "alert_status": "executable", "token": ""}
            _apply(hook, data)
            hooks[hook["id"]] = hook
            return 201, _public(hook), {}
        if len(rest) == 1 and rest[0].isdigit() and int(rest[0]) in hooks:
            hook = hooks[int(rest[0])]
            if method == "GET":
                return 200, _public(hook), {}
            if method == "PUT":
                if not data.get("url"):
                    return 400, {"error": "url is missing"}, {}
                _apply(hook, data)
                return 200, _public(hook), {}
            if method == "DELETE":
                del hooks[hook["id"]]
                return 204, None, {}
        return 404, {"message": "404 Not found"}, {}

    def _status(self, pid, sha, data, token):
        state = data.get("state")
        if state not in EVENTS:
            return 400, {"error": "state does not have a valid value"}, {}
        name = data.get("name") or data.get("context") or "default"
        earlier = [s for s in self.statuses if (s["project_id"], s["sha"], s["name"]) ==
                   (pid, sha, name)]
        if earlier and earlier[-1]["status"] == state:
            event = EVENTS[state]
            return 400, {"message": f"Cannot transition status via :{event} from :{state} "
                                    f"(Reason(s): Status cannot transition via \"{event}\")"}, {}
        status = {"id": next(self._ids), "project_id": pid, "sha": sha,
                  "ref": data.get("ref") or "main", "status": state, "name": name,
                  "target_url": data.get("target_url"), "description": data.get("description"),
                  "created_at": _now(), "started_at": None, "finished_at": None,
                  "allow_failure": False, "coverage": data.get("coverage"),
                  "author": {"id": token["user_id"], "username": "gitops-bot"}}
        self.statuses.append(status)
        return 201, {k: v for k, v in status.items() if k != "project_id"}, {}


def _apply(hook: dict, data: dict) -> None:
    for key in (*HOOK_FIELDS, "token"):
        if key in data:
            hook[key] = data[key]


def _public(hook: dict) -> dict:
    return {k: v for k, v in hook.items() if k != "token"}  # GitLab never returns the token


def _page(items: list, query: dict, base: str):
    per_page = max(1, min(int(query.get("per_page", 20) or 20), 100))
    page = max(1, int(query.get("page", 1) or 1))
    total_pages = max(1, -(-len(items) // per_page))
    headers = {"X-Page": str(page), "X-Per-Page": str(per_page), "X-Total": str(len(items)),
               "X-Total-Pages": str(total_pages),
               "X-Next-Page": str(page + 1) if page < total_pages else ""}
    if page < total_pages:
        headers["Link"] = (f'<{base}?{urlencode({"page": page + 1, "per_page": per_page})}>; '
                           'rel="next"')
    return 200, items[(page - 1) * per_page:page * per_page], headers


def _handler(emulator: GitLabEmulator):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _serve(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            emulator.requests.append((self.command, self.path, headers))
            if self.headers.get("Content-Type", "").startswith("application/x-www-form"):
                body = json.dumps({k: v[-1] for k, v in parse_qs(body.decode()).items()}).encode()
            status, payload, extra = emulator.handle(self.command, self.path, headers, body)
            out = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            if payload is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = do_PUT = do_DELETE = _serve
    return Handler
