"""One Kubernetes cluster as the engine sees it: discovery, get/list/watch, apply, delete.

Authentication comes from the `kubernetes` package (kubeconfig parsing, exec plugins, in-cluster
service account), imported only when a connection is made (it costs a process ~20 MB); requests are plain HTTP through one pooled `requests.Session`, which keeps the
hot paths (server-side apply, streaming watches) short and lets every failure be mapped to a
domain error with a message fit for the user. Credentials never appear in those messages.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import requests
import yaml

from .errors import ClusterError, ResourceError

if TYPE_CHECKING:
    from kubernetes import client as k8s_client

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


class Cluster:
    """A connection to one cluster. Thread-safe; share one per cluster."""

    def __init__(self, configuration: k8s_client.Configuration, name: str = "",
                 timeout: float = 30):
        self.name = name or configuration.host
        self.server = configuration.host.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        # Environment settings (REQUESTS_CA_BUNDLE, proxies, .netrc) would silently override the
        # cluster's own CA and credentials.
        self.session.trust_env = False
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=32)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.verify = configuration.ssl_ca_cert if configuration.verify_ssl else False
        if configuration.cert_file:
            self.session.cert = (configuration.cert_file, configuration.key_file)
        self._configuration = configuration
        self._discovery: dict[tuple[str, str], ApiResource] | None = None
        self._discovery_lock = threading.Lock()

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def from_kubeconfig(cls, text: str, context: str | None = None, name: str = "") -> "Cluster":
        from kubernetes import client as k8s_client, config as k8s_config

        try:
            config_dict = yaml.safe_load(text)
            configuration = k8s_client.Configuration()
            k8s_config.load_kube_config_from_dict(config_dict, context=context,
                                                  client_configuration=configuration)
        except Exception as exc:  # the loader raises many types; none may leak key material
            raise ClusterError(f"the kubeconfig cannot be used: {type(exc).__name__}") from None
        return cls(configuration, name=name)

    @classmethod
    def from_token(cls, server: str, token: str, ca_file: str | None = None,
                   insecure: bool = False, name: str = "") -> "Cluster":
        from kubernetes import client as k8s_client

        configuration = k8s_client.Configuration()
        configuration.host = server
        configuration.api_key = {"authorization": token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        configuration.ssl_ca_cert = ca_file
        configuration.verify_ssl = not insecure
        return cls(configuration, name=name)

    @classmethod
    def in_cluster(cls, name: str = "in-cluster") -> "Cluster":
        from kubernetes import client as k8s_client, config as k8s_config

        configuration = k8s_client.Configuration()
        k8s_config.load_incluster_config(client_configuration=configuration)
        return cls(configuration, name=name)

    def _auth_headers(self) -> dict:
        # Re-read per request: exec plugins and projected tokens rotate.
        token = self._configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
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
            raise _error_for(response, what or f"{method} {path}", self.name)
        return response

    def request_json(self, method: str, path: str, **kwargs) -> dict:
        return self.request(method, path, **kwargs).json()

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
            self.request("DELETE", resource.path(namespace, name), body=body,
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


def _error_for(response: requests.Response, what: str, cluster: str) -> Exception:
    try:
        status = response.json()
        message = status.get("message") or response.reason
    except ValueError:
        message = response.text[:300] or response.reason
    code = response.status_code
    if code == 401:
        return ClusterError(f"cluster {cluster} refused our credentials (401 Unauthorized)")
    if code >= 500 and "failed to create typed patch object" not in message:
        return ClusterError(f"cluster {cluster} failed on {what}: {message}")
    # 500 "failed to create typed patch object" is how server-side apply reports a field of the
    # wrong type: the manifest is wrong, not the cluster.
    return ResourceError(f"{what}: {message}", status=code)
