"""Charts from a Helm repository or an OCI registry as an application's source (Argo CD's
repoURL + chart + targetRevision), on the real parts: charts packaged by the real helm, pushed to
the local stack's registry (htpasswd auth) or served as index.yaml + .tgz by a small HTTP server
with basic auth; apps synced to the real control plane."""
from __future__ import annotations

import base64
import hashlib
import dataclasses
import functools
import http.server
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path

import pytest

from apps.applications import operations, polling, refreshing, services
from apps.applications.models import Application, HistoryEntry, Project
from apps.applications.rendering import render_tools
from apps.engine.errors import SourceError
from apps.engine.source import HelmSpec, SourceSpec
from apps.engine.source import chart as charts
from apps.repositories.models import Repository

from tests.appstack import live, refreshed, sync_and_wait

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]

CONFIGMAP = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
data:
  version: {{ .Chart.Version | quote }}
  greeting: {{ .Values.greeting | quote }}
  tier: {{ .Values.tier | quote }}
"""


def package(tmp: Path, version: str, into: Path) -> Path:
    """helm package of the chart `web` at `version` into `into`."""
    chart = tmp / f"src-{version}" / "web"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: web\nversion: {version}\n")
    (chart / "values.yaml").write_text("greeting: hello\ntier: default\n")
    (chart / "values-prod.yaml").write_text("greeting: hello from prod values\n")
    (chart / "templates/configmap.yaml").write_text(CONFIGMAP)
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(render_tools().helm), "package", str(chart), "-d", str(into)],
                   env={"HOME": str(tmp), "PATH": "/usr/bin:/bin"}, check=True,
                   capture_output=True)
    return into / f"web-{version}.tgz"


class OciCharts:
    """A repository of the local registry that `push` puts chart versions into."""

    def __init__(self, registry, tmp: Path):
        self.registry, self.tmp = registry, tmp
        self.url = f"oci://{registry.host}/charts-{uuid.uuid4().hex[:8]}"
        home = tmp / "push-home"
        (home / "config").mkdir(parents=True)
        auth = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
        (home / "config/registry.json").write_text(
            '{"auths": {"%s": {"auth": "%s"}}}' % (registry.host, auth))
        self.env = {"HOME": str(home), "HELM_CACHE_HOME": str(home / "cache"),
                    "HELM_CONFIG_HOME": str(home / "config"), "HELM_DATA_HOME": str(home / "data"),
                    "HELM_REGISTRY_CONFIG": str(home / "config/registry.json"),
                    "PATH": "/usr/bin:/bin"}

    def push(self, *versions: str) -> None:
        for version in versions:
            archive = package(self.tmp, version, self.tmp / "packed")
            pushed = subprocess.run([str(render_tools().helm), "push", str(archive), self.url,
                                     "--plain-http"], env=self.env, capture_output=True, text=True)
            assert pushed.returncode == 0, pushed.stderr


class HelmRepository:
    """index.yaml and packaged charts under /charts, behind HTTP basic auth; the index with an
    ETag, answered 304 when it did not change (as most chart servers do)."""

    username, password = "reader", "s3cret-chart-pass"

    def __init__(self, tmp: Path):
        self.tmp, self.served = tmp, tmp / "served"
        (self.served / "charts").mkdir(parents=True)
        expected = "Basic " + base64.b64encode(
            f"{self.username}:{self.password}".encode()).decode()
        served, not_modified = self.served, []
        self.not_modified = not_modified

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="charts"')
                    self.end_headers()
                    return
                if self.path.endswith("/index.yaml"):
                    body = (served / self.path.lstrip("/")).read_bytes()
                    etag = '"%s"' % hashlib.sha256(body).hexdigest()
                    if self.headers.get("If-None-Match") == etag:
                        not_modified.append(self.path)
                        self.send_response(304)
                        self.end_headers()
                        return
                    self.send_response(200)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                super().do_GET()

            def log_message(self, *args):
                pass

        handler = functools.partial(Handler, directory=str(self.served))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/charts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def publish(self, *versions: str) -> None:
        for version in versions:
            package(self.tmp, version, self.served / "charts")
        # Relative URLs in the index, as `helm repo index` writes them without --url.
        subprocess.run([str(render_tools().helm), "repo", "index", str(self.served / "charts")],
                       env={"HOME": str(self.tmp), "PATH": "/usr/bin:/bin"}, check=True,
                       capture_output=True)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def fresh_chart_caches(monkeypatch, registry):
    """Every refresh reads the repository (no index kept between them) and the local
    registry is reached over plain HTTP, as GITOPS_UI_HELM_PLAIN_HTTP says."""
    monkeypatch.setattr(charts, "INDEX_TTL", 0)
    monkeypatch.setenv("GITOPS_UI_HELM_PLAIN_HTTP", registry.host)
    charts.forget()
    yield
    charts.forget()


@pytest.fixture
def oci(registry, tmp_path) -> OciCharts:
    return OciCharts(registry, tmp_path)


@pytest.fixture
def helm_repo(tmp_path):
    repo = HelmRepository(tmp_path)
    yield repo
    repo.stop()


def chart_app(name, cluster, url, username, password, **fields) -> Application:
    repository, _ = Repository.objects.get_or_create(
        url=url, defaults={"username": username, "password": password})
    project, _ = Project.objects.get_or_create(name="default")
    fields.setdefault("sync_options", ["CreateNamespace=true"])
    fields.setdefault("chart", "web")
    return Application.objects.create(name=name, project=project, repository=repository,
                                      cluster=cluster, namespace=name, **fields)


def settings_of(app) -> dict:
    return live(app, "v1", "ConfigMap", f"{app.name}-settings")["data"]


def test_oci_chart_follows_its_range_to_each_new_release(oci, registry, cluster_record, name):
    oci.push("1.0.0", "1.1.0", "2.0.0")
    app = chart_app(name, cluster_record, oci.url, registry.username, registry.password,
                    revision=">=1.0.0 <2.0.0", automated=True, source={"helm": {
                        "values_files": ["values-prod.yaml"], "parameters": {"tier": "web"}}})

    app = refreshed(app)  # the automated sync runs with the refresh
    assert app.conditions == [] and app.target_sha == "1.1.0"  # the newest below 2.0.0
    assert app.synced_sha == "1.1.0" and app.sync_status == "Synced"
    assert settings_of(app) == {"version": "1.1.0", "greeting": "hello from prod values",
                                "tier": "web"}
    entry = HistoryEntry.objects.get(application=app)
    assert entry.sha == "1.1.0" and entry.source["chart"] == "web"

    # A release that fits the range is deployed by the next refresh; one outside is not.
    oci.push("1.2.0", "2.1.0")
    app = refreshed(app)
    assert app.target_sha == "1.2.0" and app.synced_sha == "1.2.0", app.conditions
    assert settings_of(app)["version"] == "1.2.0"

    # Rollback pins the chart version an entry deployed; rollback in Git is refused.
    with pytest.raises(services.ApplicationError, match="rollback in Git needs a Git source"):
        services.rollback(app, entry, mode="git")
    pinned = services.rollback(app, entry, mode="pin")
    assert operations.run(pinned.pk).phase == "Succeeded"
    app = Application.objects.get(pk=app.pk)
    assert app.pinned_revision == "1.1.0" and settings_of(app)["version"] == "1.1.0"


def test_helm_repository_chart_created_through_the_api_syncs(admin_client, helm_repo,
                                                             cluster_record, name):
    helm_repo.publish("1.0.0", "1.0.5", "1.1.0")
    Repository.objects.create(url=helm_repo.url, username=helm_repo.username,
                              password=helm_repo.password)
    Project.objects.get_or_create(name="default")
    body = {"name": name, "project": "default", "repository": helm_repo.url, "chart": "web",
            "revision": "1.0.*", "cluster": cluster_record.name, "namespace": name,
            "sync_options": ["CreateNamespace=true"],
            "source": {"helm": {"values": "greeting: from the API\n"}}}
    response = admin_client.post("/api/applications/", body, content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["chart"] == "web"

    app = refreshed(Application.objects.get(name=name))
    assert app.conditions == [] and app.target_sha == "1.0.5"
    assert [(r["kind"], r["name"], r["status"]) for r in app.resources] == [
        ("ConfigMap", f"{name}-settings", "OutOfSync")]
    op = sync_and_wait(app)
    assert op.phase == "Succeeded" and op.sha == "1.0.5", op.message
    assert settings_of(app) == {"version": "1.0.5", "greeting": "from the API",
                                "tier": "default"}
    assert refreshed(app).sync_status == "Synced"
    assert helm_repo.not_modified  # the unchanged index was not sent again

    # A new release in the range is found at the next refresh (the index changed).
    helm_repo.publish("1.0.9")
    app = refreshed(app)
    assert app.target_sha == "1.0.9" and app.sync_status == "OutOfSync", app.conditions

    # A Helm repository is no Git: polling leaves it alone, a push webhook moves nothing.
    assert polling.poll_due() == 0
    assert not refreshing.tracks_ref(app, "refs/heads/main")


@pytest.mark.parametrize("kind", ["oci", "helm"])
def test_wrong_credentials_missing_chart_and_no_fitting_version_are_clear_conditions(
        kind, oci, registry, helm_repo, cluster_record, name):
    if kind == "oci":
        oci.push("1.0.0")
        url, username, password = oci.url, registry.username, registry.password
    else:
        helm_repo.publish("1.0.0")
        url, username, password = helm_repo.url, helm_repo.username, helm_repo.password
    app = chart_app(name, cluster_record, url, username, "wrong-password", revision="1.*")

    app = refreshed(app)
    [condition] = app.conditions
    assert condition["type"] == "ComparisonError" and app.sync_status == "Unknown"
    assert condition["message"] == (f"chart web from {url}: access refused (HTTP 401); check "
                                    "the repository's username and password")

    Repository.objects.filter(pk=app.repository_id).update(password=password)
    Application.objects.filter(pk=app.pk).update(chart="nope")
    [condition] = refreshed(app).conditions
    where = "registry" if kind == "oci" else "repository"
    assert condition["message"] == f"chart nope from {url}: the {where} has no chart 'nope'"

    Application.objects.filter(pk=app.pk).update(chart="web", revision="3.*")
    [condition] = refreshed(app).conditions
    assert condition["message"] == f"chart web from {url}: no version matches '3.*' (newest: 1.0.0)"

    Application.objects.filter(pk=app.pk).update(revision="1.0.0")
    app = refreshed(app)
    assert app.conditions == [] and app.target_sha == "1.0.0"


def test_chart_fields_are_checked_with_the_field_named(admin_client, oci, helm_repo,
                                                        cluster_record, name):
    Repository.objects.create(url=oci.url)
    Repository.objects.create(url=helm_repo.url)
    Project.objects.get_or_create(name="default")
    base = {"name": name, "project": "default", "cluster": cluster_record.name,
            "namespace": name}
    cases = [
        ({"repository": helm_repo.url, "chart": "../web"}, "chart", "a chart name"),
        ({"repository": helm_repo.url, "chart": "web", "revision": "main"}, "revision",
         "'main' is not a chart version or version range"),
        ({"repository": oci.url}, "chart", "an oci:// repository holds charts"),
        ({"repository": oci.url, "chart": "web", "tool": "kustomize"}, "tool",
         "a chart is rendered with helm"),
    ]
    for fields, field, message in cases:
        response = admin_client.post("/api/applications/", {**base, **fields},
                                     content_type="application/json")
        assert response.status_code == 400, response.content
        assert message in response.json()["errors"][field][0], response.json()
    assert not Application.objects.filter(name=name).exists()

    # Changing only the revision of a chart app is checked against its chart too.
    response = admin_client.post("/api/applications/", {**base, "repository": oci.url,
                                                        "chart": "web", "revision": "~1.2"},
                                 content_type="application/json")
    assert response.status_code == 201, response.content
    response = admin_client.patch(f"/api/applications/{name}", {"revision": "HEAD~1"},
                                  content_type="application/json")
    assert response.status_code == 400 and "revision" in response.json()["errors"]

    # The admin's form offers the field and checks it the same way.
    page = admin_client.get("/admin/applications/application/add/")
    assert page.status_code == 200 and b'name="chart"' in page.content
    form = {"name": f"{name}-admin", "project": Project.objects.get(name="default").pk,
            "repository": Repository.objects.get(url=oci.url).pk, "revision": "HEAD",
            "path": ".", "cluster": cluster_record.pk, "namespace": name, "retry_limit": 2,
            "source": "{}", "sync_options": "[]", "ignore_differences": "[]"}
    page = admin_client.post("/admin/applications/application/add/", form)
    assert b"an oci:// repository holds charts: name the chart" in page.content
    page = admin_client.post("/admin/applications/application/add/", {**form, "chart": "web"})
    assert page.status_code == 302, page.content.decode()[:3000]
    assert Application.objects.get(name=f"{name}-admin").chart == "web"

    # The repository API takes oci:// URLs; other schemes are still refused.
    for url, status in ((f"oci://{oci.registry.host}/more", 201), ("ftp://example.com/x", 400)):
        response = admin_client.post("/api/repositories/", {"url": url},
                                     content_type="application/json")
        assert response.status_code == status, response.content


def test_a_pulled_version_is_kept_and_nothing_is_left_on_disk(oci, registry, tmp_path,
                                                              monkeypatch):
    oci.push("1.0.0")
    leftovers = tmp_path / "render-tmp"
    leftovers.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(leftovers))
    source = charts.ChartSource(oci.url, "web", registry.username, registry.password)
    tools = render_tools()
    spec = SourceSpec(helm=HelmSpec(release_name="demo", values_files=["values-prod.yaml"]))
    version = charts.resolve(source, "*", tools)
    objects = charts.render_chart(source, version, spec, tools, namespace="demo")
    assert [o["metadata"]["name"] for o in objects] == ["demo-settings"]
    assert objects[0]["data"]["greeting"] == "hello from prod values"
    assert list(leftovers.iterdir()) == []  # no chart, no credentials file, no helm home

    # The same version again needs no helm pull: it renders even without a registry login.
    anonymous = dataclasses.replace(source, username="", password="")
    assert charts.render_chart(anonymous, version, spec, tools)[0]["data"]["version"] == "1.0.0"

    # A values file must be inside the chart.
    outside = SourceSpec(helm=HelmSpec(values_files=["../../etc/passwd"]))
    with pytest.raises(Exception, match="leads outside the repository"):
        charts.render_chart(source, version, outside, tools)

    # Anonymous, the registry refuses to list the chart's versions.
    with pytest.raises(SourceError, match="access refused"):
        charts.resolve(anonymous, "*", tools)
