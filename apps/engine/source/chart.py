"""A chart from a Helm repository (index.yaml over HTTP) or an OCI registry as an application's
source, as Argo CD's `repoURL` + `chart` + `targetRevision`.

`resolve()` finds the newest version the application's revision allows (an exact version or a
range: `1.2.*`, `>=1.0.0 <2.0.0`), from the repository's index.yaml or the registry's tag list,
read here in Python: every refresh resolves again, so a new release that fits the range is
picked up, and that must cost no process. `render_chart()` runs `helm pull` of that exact
version (what it fetched is kept in memory per repository, chart and version: a release does
not change), unpacks it in a temporary folder and renders it as a chart from Git is rendered
(render.py; values files must be inside the chart).

Credentials are the repository's username and password: sent by us as HTTP basic auth (or
exchanged for a registry's bearer token), and handed to helm as in-memory files
(helm_deps.private_helm), never on a command line or a disk.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from urllib.parse import urlencode, urljoin, urlsplit

import yaml

from ..errors import RenderError, SourceError
from . import semver
from .helm_deps import _BuiltCharts, private_helm
from .render import RenderTools, SourceSpec, _tool, render

INDEX_TTL = 3.0  # seconds an index or tag list serves the refreshes of many apps at once
MAX_INDEX_BYTES = 64 << 20
REPO_NAME = "chart-source"  # the one repository helm is told of, in its private config
CHART_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class ChartSource:
    repo_url: str  # https://charts.example.com/stable or oci://registry.example.com/charts
    chart: str
    username: str = ""
    password: str = field(default="", repr=False)

    @property
    def oci(self) -> bool:
        return self.repo_url.startswith("oci://")

    def describe(self) -> str:
        return f"chart {self.chart} from {self.repo_url}"


def resolve(source: ChartSource, revision: str, tools: RenderTools) -> str:
    """The version to deploy: `revision` itself when the repository has it, else the newest
    that the range allows ("" or HEAD: the newest release). SourceError when the repository
    cannot be read, refuses the credentials, lacks the chart or has no version that fits."""
    constraint = revision.strip()
    if constraint in ("", "HEAD"):
        constraint = "*"
    try:
        semver.check_range(constraint)
    except semver.InvalidVersion:
        raise SourceError(f"{source.describe()}: revision {revision!r} is not a chart version "
                          "or version range (e.g. 1.2.3, 1.2.*, >=1.0.0 <2.0.0)") from None
    versions = _versions(source, tools)
    found = semver.newest_matching(constraint, list(versions))
    if found is None:
        newest = sorted(versions, key=_sort_key, reverse=True)[:5]
        raise SourceError(f"{source.describe()}: no version matches {constraint!r} "
                          f"(newest: {', '.join(newest)})")
    if len(found) > 64:
        raise SourceError(f"{source.describe()}: version {found[:64]}… is longer than the 64 "
                          "characters a revision may have")
    return found


def render_chart(source: ChartSource, version: str, spec: SourceSpec, tools: RenderTools,
                 namespace: str | None = None) -> list[dict]:
    """The objects of `version` of the chart, rendered with `spec.helm` (values, values files
    inside the chart, parameters, release name)."""
    archive = _pulled.get(_pull_key(source, version))
    if archive is None:
        archive = {"chart.tgz": _pull(source, version, tools)}
        _pulled.put(_pull_key(source, version), archive, ttl=None)
    with tempfile.TemporaryDirectory(prefix="gitops-chart-") as tmp:
        root = Path(tmp) / "chart"
        root.mkdir()
        try:
            with tarfile.open(fileobj=BytesIO(archive["chart.tgz"])) as packed:
                packed.extractall(root, filter="data")  # nothing outside, no devices
        except (tarfile.TarError, OSError) as exc:
            raise RenderError(f"{source.describe()} {version}: not a chart archive: {exc}") \
                from None
        folders = [p for p in root.iterdir() if p.is_dir() and (p / "Chart.yaml").is_file()]
        if len(folders) != 1:
            raise RenderError(f"{source.describe()} {version}: the archive holds no chart")
        chart_spec = SourceSpec(path=folders[0].name, tool="helm", helm=spec.helm)
        return render(root, chart_spec, tools, namespace=namespace)


def forget() -> None:
    """Drop what was read or pulled (tests; a repository whose charts were rewritten)."""
    with _lock:
        _indexes.clear()
        _by_etag.clear()
    _pulled.clear()


# --- versions ----------------------------------------------------------------------------------
_lock = threading.Lock()
_indexes: dict[str, tuple[float, dict[str, dict]]] = {}
# ETag of an index.yaml -> its chart's versions: a server that sends one answers "not modified"
# to the next refresh, and a large index is not read again.
_by_etag: dict[str, tuple[str, dict[str, dict]]] = {}
_pulled = _BuiltCharts(max_bytes=128 << 20)


def _versions(source: ChartSource, tools: RenderTools) -> dict[str, dict]:
    """version -> its index entry (OCI: {}), read at most every INDEX_TTL seconds."""
    key = hashlib.sha256(json.dumps([source.repo_url, source.chart, source.username,
                                     source.password]).encode()).hexdigest()
    with _lock:
        cached = _indexes.get(key)
        if cached and cached[0] > time.monotonic():
            return cached[1]
    versions = _oci_tags(source, tools) if source.oci else _index_entries(source, tools, key)
    with _lock:
        now = time.monotonic()
        if len(_indexes) > 256:  # one entry per repository, chart and credentials: keep few
            for stale in [k for k, (until, _) in _indexes.items() if until <= now]:
                del _indexes[stale]
        _indexes[key] = (now + INDEX_TTL, versions)
    return versions


def _index_entries(source: ChartSource, tools: RenderTools, key: str) -> dict[str, dict]:
    url = source.repo_url.rstrip("/") + "/index.yaml"
    with _lock:
        etag, known = _by_etag.get(key, ("", None))
    headers = {**_basic(source), **({"If-None-Match": etag} if etag else {})}
    status, response_headers, body = _get(url, headers, tools.timeout, source)
    if status == 304 and known is not None:
        return known
    if status in (401, 403):
        raise SourceError(_refused(source, status))
    if status != 200:
        raise SourceError(f"{source.describe()}: no Helm repository index at {url} (HTTP "
                          f"{status})")
    try:
        index = yaml.load(body, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        entries = index["entries"]
    except (yaml.YAMLError, TypeError, KeyError):
        raise SourceError(f"{source.describe()}: {url} is not a Helm repository index") from None
    releases = entries.get(source.chart) if isinstance(entries, dict) else None
    if not releases or not isinstance(releases, list):
        raise SourceError(f"{source.describe()}: the repository has no chart {source.chart!r}")
    versions = {str(r["version"]): r for r in releases if isinstance(r, dict) and r.get("version")}
    if response_headers.get("ETag"):
        with _lock:
            if len(_by_etag) > 1000:
                _by_etag.clear()
            _by_etag[key] = (response_headers["ETag"], versions)
    return versions


def _oci_tags(source: ChartSource, tools: RenderTools) -> dict[str, dict]:
    host, name = _oci_parts(source)
    scheme = "http" if host in tools.helm_plain_http else "https"
    url, tags = f"{scheme}://{host}/v2/{name}/tags/list", []
    for _ in range(100):  # pages
        status, headers, body = _registry_get(url, source, tools, f"repository:{name}:pull")
        if status == 404:
            raise SourceError(f"{source.describe()}: the registry has no chart {source.chart!r}")
        if status in (401, 403):
            raise SourceError(_refused(source, status))
        if status != 200:
            raise SourceError(f"{source.describe()}: the registry answered HTTP {status}")
        try:
            tags += json.loads(body).get("tags") or []
        except (ValueError, AttributeError):
            raise SourceError(f"{source.describe()}: the registry's tag list is not JSON") \
                from None
        following = re.search(r"<([^>]+)>;\s*rel=\"?next\"?", headers.get("Link", ""))
        if not following:
            break
        url = urljoin(url, following.group(1))
    if not tags:
        raise SourceError(f"{source.describe()}: the registry has no chart {source.chart!r}")
    return {tag.replace("_", "+"): {} for tag in tags if isinstance(tag, str)}  # helm's rule


def _oci_parts(source: ChartSource) -> tuple[str, str]:
    parts = urlsplit(source.repo_url)
    return parts.netloc, "/".join(p for p in (parts.path.strip("/"), source.chart) if p)


def _registry_get(url: str, source: ChartSource, tools: RenderTools, scope: str):
    """GET with basic auth, or the bearer token the registry's challenge asks for."""
    status, headers, body = _get(url, _basic(source), tools.timeout, source)
    challenge = headers.get("WWW-Authenticate", "")
    if status != 401 or not challenge.lower().startswith("bearer"):
        return status, headers, body
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    realm = params.pop("realm", "")
    if urlsplit(realm).scheme not in ("http", "https"):
        return status, headers, body
    query = {k: v for k, v in params.items() if k == "service"}
    query["scope"] = params.get("scope") or scope
    token_status, _, token_body = _get(f"{realm}?{urlencode(query)}", _basic(source),
                                       tools.timeout, source)
    if token_status != 200:
        return token_status, {}, b""
    try:
        token = json.loads(token_body)
        token = token.get("token") or token.get("access_token")
    except (ValueError, AttributeError):
        token = None
    if not token:
        return 401, {}, b""
    return _get(url, {"Authorization": f"Bearer {token}"}, tools.timeout, source)


def _basic(source: ChartSource) -> dict[str, str]:
    if not source.username:
        return {}
    pair = f"{source.username}:{source.password}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


def _refused(source: ChartSource, status: int) -> str:
    who = "the repository's username and password" if source.username else \
        "credentials (the repository has none)"
    return f"{source.describe()}: access refused (HTTP {status}); check {who}"


class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    """Follows http(s) redirects; the Authorization header goes only to the same host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urlsplit(newurl).netloc != urlsplit(req.full_url).netloc:
            new.remove_header("Authorization")
        return new


_opener = urllib.request.build_opener(_SameHostRedirects)


def _get(url: str, headers: dict, timeout: float, source: ChartSource):
    """(status, headers, body) of a GET; SourceError when the server cannot be reached."""
    request = urllib.request.Request(url, headers={"User-Agent": "gitops-ui", **headers})
    try:
        with _opener.open(request, timeout=timeout) as response:
            return response.status, response.headers, _read(response, source)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, b""
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SourceError(f"{source.describe()}: cannot reach {_no_credentials(url)}: "
                          f"{reason}") from None


def _read(response, source: ChartSource) -> bytes:
    body = response.read(MAX_INDEX_BYTES + 1)
    if len(body) > MAX_INDEX_BYTES:
        raise SourceError(f"{source.describe()}: the index is larger than "
                          f"{MAX_INDEX_BYTES >> 20} MiB")
    return body


def _no_credentials(url: str) -> str:
    return re.sub(r"//[^/@\s]+@", "//", url.split("?", 1)[0])


def _sort_key(version: str):
    try:
        return (1, semver.Version.parse(version))
    except semver.InvalidVersion:
        return (0, semver.Version(0, 0, 0, "", version))


# --- pulling -----------------------------------------------------------------------------------
def _pull_key(source: ChartSource, version: str) -> str:
    return json.dumps([source.repo_url, source.chart, version])


def _pull(source: ChartSource, version: str, tools: RenderTools) -> bytes:
    """The packaged chart, fetched by `helm pull` with a private home and in-memory
    credentials."""
    with tempfile.TemporaryDirectory(prefix="gitops-chart-pull-") as tmp:
        tmp_path, files = Path(tmp), {}
        destination = tmp_path / "pulled"
        destination.mkdir()
        if source.oci:
            host, name = _oci_parts(source)
            registry_config = tools.helm_registry_config
            if source.username:
                registry_config = json.dumps({"auths": {host: {
                    "username": source.username, "password": source.password}}})
            argv = [str(tools.helm), "pull", f"oci://{host}/{name}", "--version", version]
            if host in tools.helm_plain_http:
                argv.append("--plain-http")
        else:
            registry_config = ""
            # helm finds a named repository's index in its cache: the one entry we resolved.
            entry = _versions(source, tools).get(version)
            if entry is None:
                raise SourceError(f"{source.describe()}: the repository has no version "
                                  f"{version}")
            _check_urls(source, version, entry)
            cache = tmp_path / "repository"
            cache.mkdir()
            (cache / f"{REPO_NAME}-index.yaml").write_text(yaml.safe_dump(
                {"apiVersion": "v1", "entries": {source.chart: [entry]}}))
            repository = {"name": REPO_NAME, "url": source.repo_url}
            if source.username:
                repository.update(username=source.username, password=source.password)
            files["repositories.yaml"] = yaml.safe_dump(
                {"apiVersion": "", "repositories": [repository]}).encode()
            argv = [str(tools.helm), "pull", f"{REPO_NAME}/{source.chart}", "--version",
                    version, "--repository-cache", str(cache)]
        argv += ["--destination", str(destination)]
        with private_helm(tmp_path, registry_config, files) as (env, fds, paths):
            if "repositories.yaml" in paths:
                argv += ["--repository-config", paths["repositories.yaml"]]
            try:
                _tool(argv, tmp_path, tmp_path, tools.timeout, "helm pull", env=env,
                      pass_fds=fds)
            except RenderError as exc:
                message = _no_credentials(str(exc).split("helm pull ", 1)[-1])
                raise SourceError(f"{source.describe()} {version}: helm pull "
                                  f"{message.replace(str(tmp_path), '.')}") from None
        packed = sorted(destination.glob("*.tgz"))
        if len(packed) != 1:
            raise SourceError(f"{source.describe()} {version}: helm pull fetched no chart")
        return packed[0].read_bytes()


def _check_urls(source: ChartSource, version: str, entry: dict) -> None:
    """An index entry names where its archive is: http(s), relative to the repository or not."""
    urls = entry.get("urls") or []
    if not urls or not all(isinstance(u, str) and urlsplit(urljoin(
            source.repo_url.rstrip("/") + "/", u)).scheme in ("http", "https") for u in urls):
        raise SourceError(f"{source.describe()} {version}: the index gives no http(s) URL "
                          "for the archive")
