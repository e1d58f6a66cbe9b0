"""One Kubernetes cluster as the engine sees it: discovery, get/list/watch, apply, delete.

Credentials come from kubeconfig.py's parser (inline values only, nothing executed or read from
disk), from a server URL and token, or from the pod's own service account (the `kubernetes`
package, imported only then: it costs a process ~20 MB). Requests are plain HTTP through one
urllib3 pool for the calls answered with one JSON document (apply, get, list, create, delete: a
first sync is mostly these, and `requests` spent more CPU preparing each one than urllib3 does
sending it), and through a `requests.Session` for streams (watches, logs) and callers that want a
response object. Every failure is mapped to a domain error with a message fit for the user.
Credentials never appear in those messages, and key material never touches the disk (see
_MemoryFiles).
"""
from __future__ import annotations

import json
import os
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlencode

import requests
import urllib3

from .errors import ClusterError, ResourceError
from .kubeconfig import Credentials, parse as parse_kubeconfig

JSON = "application/json"
APPLY_PATCH = "application/apply-patch+yaml"


@dataclass(frozen=True)
class ApiResource:
    """A kind the API server serves, at its preferred version."""
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    verbs: frozenset[str]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return f"{base}/{name}" if name else base


class _MemoryFiles:
    """PEM data as paths TLS libraries accept (they want file names for CAs and client keys),
    backed by anonymous memory (memfd): nothing is written to a disk, and nothing survives the
    process, however it ends. A path stays valid until close(), also in forked children."""

    def __init__(self):
        self._fds: list[int] = []

    def path(self, data: bytes, label: str) -> str:
        if not hasattr(os, "memfd_create"):
            raise ClusterError("keeping TLS credentials in memory needs Linux (memfd_create)")
        fd = os.memfd_create(f"gitops-ui-{label}")
        self._fds.append(fd)
        os.write(fd, data)
        # Each open() of /proc/self/fd/N is a new file description starting at offset 0.
        return f"/proc/self/fd/{fd}"

    def close(self) -> None:
        while self._fds:
            os.close(self._fds.pop())


class _TLSAdapter(requests.adapters.HTTPAdapter):
    """Pooled connections that can present and check another TLS name than the URL's host
    (kubeconfig's tls-server-name)."""

    def __init__(self, server_hostname: str | None = None, **kwargs):
        self._server_hostname = server_hostname  # read by init_poolmanager, from super().__init__
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        if self._server_hostname:
            kwargs["server_hostname"] = self._server_hostname
        super().init_poolmanager(*args, **kwargs)


class Cluster:
    """A connection to one cluster. Thread-safe; share one per cluster; close() (or leaving a
    `with` block) releases its connections and in-memory key files."""

    def __init__(self, credentials: Credentials, name: str = "", timeout: float = 30,
                 bearer: Callable[[], str | None] | None = None):
        """`bearer`: the Authorization header value, asked per request (rotating tokens);
        by default from credentials.token."""
        self.credentials = credentials
        self.name = name or credentials.server
        self.server = credentials.server.rstrip("/")
        self.timeout = timeout
        self._files = _MemoryFiles()
        self._closed = weakref.finalize(self, self._files.close)
        self.session = requests.Session()
        # Environment settings (REQUESTS_CA_BUNDLE, proxies, .netrc) would silently override the
        # cluster's own CA and credentials.
        self.session.trust_env = False
        adapter = _TLSAdapter(credentials.tls_server_name, pool_connections=4, pool_maxsize=32)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        if credentials.insecure:
            self.session.verify = False
        elif credentials.ca_pem:
            self.session.verify = self._files.path(credentials.ca_pem, "ca")
        if credentials.client_cert_pem:
            self.session.cert = (self._files.path(credentials.client_cert_pem, "client-cert"),
                                 self._files.path(credentials.client_key_pem, "client-key"))
        if bearer is None and credentials.token:
            header = f"Bearer {credentials.token}"
            bearer = lambda: header  # noqa: E731
        if bearer is None and credentials.username:
            self.session.auth = (credentials.username, credentials.password or "")
        self._bearer = bearer
        self._pool = self._json_pool(credentials)
        self._discovery: dict[tuple[str, str], ApiResource] | None = None
        self._discovery_lock = threading.Lock()

    def _json_pool(self, credentials: Credentials) -> urllib3.PoolManager:
        """The same TLS settings as the session's (requests hands these to urllib3 too)."""
        tls: dict = {"cert_reqs": "CERT_NONE" if credentials.insecure else "CERT_REQUIRED"}
        if not credentials.insecure:
            tls["ca_certs"] = (self.session.verify if isinstance(self.session.verify, str)
                               else requests.certs.where())
        if self.session.cert:
            tls["cert_file"], tls["key_file"] = self.session.cert
        if credentials.tls_server_name:
            tls["server_hostname"] = credentials.tls_server_name
        self._json_headers = {"Accept": JSON}
        if self.session.auth:
            self._json_headers.update(urllib3.util.make_headers(basic_auth=":".join(self.session.auth)))
        return urllib3.PoolManager(num_pools=4, maxsize=32, **tls)

    def close(self) -> None:
        self.session.close()
        self._pool.clear()
        self._closed()

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def from_kubeconfig(cls, text: str, context: str | None = None, name: str = "") -> "Cluster":
        """KubeconfigRefused / KubeconfigError (both ClusterError) if it cannot be used safely."""
        return cls(parse_kubeconfig(text, context), name=name)

    @classmethod
    def from_token(cls, server: str, token: str, ca_pem: str | bytes | None = None,
                   insecure: bool = False, name: str = "") -> "Cluster":
        if isinstance(ca_pem, str):
            ca_pem = ca_pem.encode()
        return cls(Credentials(server=server, ca_pem=ca_pem or None, insecure=insecure,
                               token=token), name=name)

    @classmethod
    def in_cluster(cls, name: str = "in-cluster") -> "Cluster":
        """The pod's own service account (files Kubernetes mounts into the pod, not user input)."""
        from kubernetes import client as k8s_client, config as k8s_config

        configuration = k8s_client.Configuration()
        k8s_config.load_incluster_config(client_configuration=configuration)
        credentials = Credentials(server=configuration.host,
                                  ca_pem=Path(configuration.ssl_ca_cert).read_bytes())
        # Re-read per request: projected service-account tokens rotate.
        return cls(credentials, name=name, bearer=lambda: configuration.get_api_key_with_prefix(
            "BearerToken", alias="authorization"))

    def _auth_headers(self) -> dict:
        token = self._bearer() if self._bearer else None
        return {"Authorization": token} if token else {}

    # --- HTTP ---------------------------------------------------------------------------------
    def request(self, method: str, path: str, *, params: dict | None = None, body=None,
                content_type: str = JSON, timeout: float | None = None, stream: bool = False,
                what: str = "") -> requests.Response:
        headers = {"Accept": JSON, **self._auth_headers()}
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        try:
            response = self.session.request(method, self.server + path, params=params, data=data,
                                            headers=headers, stream=stream,
                                            timeout=timeout or self.timeout)
        except requests.exceptions.SSLError as exc:
            raise ClusterError(f"TLS handshake with cluster {self.name} failed: "
                               f"{_first_line(exc)}") from None
        except requests.RequestException as exc:
            raise ClusterError(f"cannot reach cluster {self.name} ({self.server}): "
                               f"{type(exc).__name__}") from None
        if response.status_code >= 400:
            raise _error_for(response.status_code, response.content, response.reason,
                             what or f"{method} {path}", self.name)
        return response

    def request_json(self, method: str, path: str, *, params: dict | None = None, body=None,
                     content_type: str = JSON, timeout: float | None = None,
                     what: str = "") -> dict:
        """One request answered with one JSON document, through the urllib3 pool."""
        headers = {**self._json_headers, **self._auth_headers()}
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        url = self.server + path + (f"?{urlencode(params)}" if params else "")
        seconds = timeout or self.timeout
        try:
            response = self._pool.urlopen(method, url, body=data, headers=headers,
                                          timeout=urllib3.Timeout(connect=seconds, read=seconds),
                                          retries=False, redirect=False)
        except urllib3.exceptions.SSLError as exc:
            raise ClusterError(f"TLS handshake with cluster {self.name} failed: "
                               f"{_first_line(exc)}") from None
        except urllib3.exceptions.HTTPError as exc:
            raise ClusterError(f"cannot reach cluster {self.name} ({self.server}): "
                               f"{type(exc).__name__}") from None
        if response.status >= 300:
            raise _error_for(response.status, response.data, response.reason,
                             what or f"{method} {path}", self.name)
        try:
            return json.loads(response.data)
        except ValueError:
            raise ClusterError(f"cluster {self.name} answered {what or path} with something "
                               f"other than JSON") from None

    # --- discovery ----------------------------------------------------------------------------
    def discover(self, refresh: bool = False) -> dict[tuple[str, str], ApiResource]:
        """(group, kind) -> ApiResource at the group's preferred version; subresources left out."""
        with self._discovery_lock:
            if self._discovery is not None and not refresh:
                return self._discovery
            found: dict[tuple[str, str], ApiResource] = {}
            core = self.request_json("GET", "/api/v1", what="discovery")
            self._add_resources(found, "", "v1", core)
            groups = self.request_json("GET", "/apis", what="discovery")["groups"]
            for group in groups:
                version = group["preferredVersion"]["version"]
                try:
                    listing = self.request_json("GET", f"/apis/{group['name']}/{version}",
                                                what="discovery")
                except (ClusterError, ResourceError):
                    # An aggregated API whose backend is down (503) must not hide every other
                    # kind; its own kinds show as unknown until it answers again.
                    continue
                self._add_resources(found, group["name"], version, listing)
            self._discovery = found
            return found

    @staticmethod
    def _add_resources(found, group, version, listing):
        for r in listing.get("resources", []):
            if "/" in r["name"]:
                continue
            found.setdefault((group, r["kind"]), ApiResource(
                group, version, r["kind"], r["name"], r["namespaced"], frozenset(r.get("verbs", []))))

    def resource_for(self, api_version: str, kind: str) -> ApiResource:
        """The served resource for a manifest's apiVersion/kind; a CRD created a moment ago is
        found by refreshing discovery once."""
        group = api_version.rpartition("/")[0]
        for refresh in (False, True):
            resource = self.discover(refresh=refresh).get((group, kind))
            if resource:
                return resource
        raise ResourceError(f"the cluster does not serve kind {kind} in {api_version}"
                            f" (is its CustomResourceDefinition installed?)")

    def resource_of(self, obj: dict) -> ApiResource:
        return self.resource_for(obj["apiVersion"], obj["kind"])

    # --- objects ------------------------------------------------------------------------------
    def read(self, obj: dict, name: str | None = None) -> dict | None:
        """The live object a manifest names (`name` instead of its own, e.g. a generated one)."""
        meta = obj["metadata"]
        return self.get(self.resource_of(obj), meta.get("namespace"), name or meta["name"])

    def get(self, resource: ApiResource, namespace: str | None, name: str) -> dict | None:
        try:
            return self.request_json("GET", resource.path(namespace, name))
        except ResourceError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, resource: ApiResource, namespace: str | None = None,
             label_selector: str | None = None) -> tuple[list[dict], str]:
        """All objects and the list's resourceVersion (to start a watch from), page by page."""
        items, params = [], {"limit": 500}
        if label_selector:
            params["labelSelector"] = label_selector
        while True:
            page = self.request_json("GET", resource.path(namespace), params=params,
                                     what=f"list {resource.plural}")
            kind = resource.kind
            for item in page.get("items", []):
                item.setdefault("apiVersion", resource.api_version)
                item.setdefault("kind", kind)
                items.append(item)
            cont = page["metadata"].get("continue")
            if not cont:
                return items, page["metadata"].get("resourceVersion", "")
            params["continue"] = cont

    def watch(self, resource: ApiResource, resource_version: str,
              timeout_seconds: int = 300) -> Iterator[tuple[str, dict]]:
        """(type, object) events after `resource_version`, BOOKMARKs included, until the server
        ends the stream. A 410 Gone surfaces as ResourceError with status 410."""
        params = {"watch": "true", "resourceVersion": resource_version,
                  "allowWatchBookmarks": "true", "timeoutSeconds": timeout_seconds}
        response = self.request("GET", resource.path(), params=params, stream=True,
                                timeout=timeout_seconds + 30, what=f"watch {resource.plural}")
        with response:
            try:
                for event in self._events(response, resource):
                    yield event
            except requests.RequestException as exc:
                raise ClusterError(f"watch of {resource.plural} on {self.name} broke off: "
                                   f"{type(exc).__name__}") from None

    @staticmethod
    def _events(response: requests.Response, resource: ApiResource) -> Iterator[tuple[str, dict]]:
        for line in response.iter_lines():
            if not line:
                continue
            event = json.loads(line)
            if event["type"] == "ERROR":
                status = event["object"]
                raise ResourceError(status.get("message", "watch error"), status=status.get("code"))
            obj = event["object"]
            obj.setdefault("apiVersion", resource.api_version)
            obj.setdefault("kind", resource.kind)
            yield event["type"], obj

    def apply(self, obj: dict, field_manager: str, dry_run: bool = False,
              force: bool = True) -> dict:
        """Server-side apply; with dry_run the server answers with what the object would be."""
        resource = self.resource_of(obj)
        meta = obj["metadata"]
        params = {"fieldManager": field_manager, "force": "true" if force else "false"}
        if dry_run:
            params["dryRun"] = "All"
        return self.request_json(
            "PATCH", resource.path(meta.get("namespace"), meta["name"]), params=params,
            body=json.dumps(obj), content_type=APPLY_PATCH, what=_describe(obj))

    def create(self, obj: dict, field_manager: str, dry_run: bool = False) -> dict:
        resource = self.resource_of(obj)
        params = {"fieldManager": field_manager, **({"dryRun": "All"} if dry_run else {})}
        return self.request_json("POST", resource.path(obj["metadata"].get("namespace")),
                                 params=params, body=obj, what=_describe(obj))

    def replace(self, obj: dict, field_manager: str, dry_run: bool = False) -> dict:
        """PUT (Replace=true): the object becomes exactly the manifest; created if missing."""
        resource = self.resource_of(obj)
        meta = obj["metadata"]
        live = self.read(obj)
        if live is None:
            return self.create(obj, field_manager, dry_run)
        body = {**obj, "metadata": {**meta, "resourceVersion": live["metadata"]["resourceVersion"]}}
        params = {"fieldManager": field_manager, **({"dryRun": "All"} if dry_run else {})}
        return self.request_json("PUT", resource.path(meta.get("namespace"), meta["name"]),
                                 params=params, body=body, what=_describe(obj))

    def delete(self, resource: ApiResource, namespace: str | None, name: str,
               propagation: str = "Foreground", dry_run: bool = False) -> bool:
        """False if it was already gone."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        if dry_run:
            body["dryRun"] = ["All"]
        try:
            self.request_json("DELETE", resource.path(namespace, name), body=body,
                              what=f"delete {resource.kind} {name}")
        except ResourceError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def version(self) -> dict:
        return self.request_json("GET", "/version", what="version")


def _describe(obj: dict) -> str:
    meta = obj.get("metadata", {})
    ns = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj.get('kind')} {ns}{meta.get('name')}"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _error_for(code: int, body: bytes, reason: str | None, what: str, cluster: str) -> Exception:
    reason = reason or str(code)
    try:
        message = json.loads(body).get("message") or reason
    except (ValueError, AttributeError):
        message = body[:300].decode("utf-8", "replace") or reason
    if code == 401:
        return ClusterError(f"cluster {cluster} refused our credentials (401 Unauthorized)")
    if code >= 500 and "failed to create typed patch object" not in message:
        return ClusterError(f"cluster {cluster} failed on {what}: {message}")
    # 500 "failed to create typed patch object" is how server-side apply reports a field of the
    # wrong type: the manifest is wrong, not the cluster.
    return ResourceError(f"{what}: {message}", status=code)
