"""Helm charts with dependencies: `helm dependency build` with the real helm binary, against the
local stack's OCI registry (htpasswd auth, plain HTTP) and Git server."""
from __future__ import annotations

import dataclasses
import functools
import http.server
import json
import socket
import subprocess
import tempfile
import threading
import uuid

import pytest

from apps.applications.rendering import render_tools
from apps.engine.errors import RenderError
from apps.engine.source import GitCredentials, RenderTools, RepoCache, SourceSpec, render
from apps.engine.source import helm_deps
from tests.engine.test_source import push_files, write_tree

LIB_CHART = {
    "Chart.yaml": "apiVersion: v2\nname: lib\nversion: 0.1.0\n",
    "templates/configmap.yaml": ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                                 "  name: {{ .Release.Name }}-from-lib\ndata:\n"
                                 "  greeting: {{ .Values.greeting | quote }}\n"),
    "values.yaml": "greeting: hello from lib\n",
}


def app_chart(dependency_url: str, version: str = "0.1.0") -> dict[str, str]:
    return {
        "app/Chart.yaml": ("apiVersion: v2\nname: app\nversion: 1.0.0\ndependencies:\n"
                           f"- name: lib\n  version: {version}\n  repository: {dependency_url}\n"),
        "app/values.yaml": "lib:\n  greeting: hello from app\n",
        "app/templates/service.yaml": ("apiVersion: v1\nkind: Service\nmetadata:\n"
                                       "  name: {{ .Release.Name }}-app\nspec:\n"
                                       "  ports: [{port: 80}]\n"),
    }


def registry_config(registry, password=None) -> str:
    return json.dumps({"auths": {registry.host: {
        "username": registry.username, "password": password or registry.password}}})


@pytest.fixture
def tools(registry) -> RenderTools:
    """The helm that the product finds, with the test registry's credentials."""
    return dataclasses.replace(render_tools(), helm_registry_config=registry_config(registry),
                               helm_plain_http=(registry.host,))


@pytest.fixture
def lib_url(registry, tools, tmp_path) -> str:
    """oci:// URL of a new repository holding the chart `lib` 0.1.0, pushed with helm."""
    write_tree(tmp_path / "lib", LIB_CHART)
    home = tmp_path / "helm-home"
    (home / "config").mkdir(parents=True)
    (home / "config/registry.json").write_text(registry_config(registry))
    env = {"HOME": str(home), "HELM_CACHE_HOME": str(home / "cache"),
           "HELM_CONFIG_HOME": str(home / "config"), "HELM_DATA_HOME": str(home / "data"),
           "HELM_REGISTRY_CONFIG": str(home / "config/registry.json"), "PATH": "/usr/bin:/bin"}
    helm = str(tools.helm)
    subprocess.run([helm, "package", "lib", "-d", "out"], cwd=tmp_path, env=env, check=True,
                   capture_output=True)
    url = f"oci://{registry.host}/charts-{uuid.uuid4().hex[:8]}"
    pushed = subprocess.run([helm, "push", "out/lib-0.1.0.tgz", url, "--plain-http"],
                            cwd=tmp_path, env=env, capture_output=True, text=True)
    assert pushed.returncode == 0, pushed.stderr
    return url


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Temporary folders of the render go here, so a test can see that none is left."""
    folder = tmp_path / "render-tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture(autouse=True)
def empty_build_cache():
    helm_deps._built.clear()
    yield
    helm_deps._built.clear()


def kinds_and_names(objects):
    return sorted(f"{o['kind']}/{o['metadata']['name']}" for o in objects)


def test_chart_depending_on_an_oci_chart_renders_it_and_refreshes_fetch_nothing(
        git_server, registry, tools, lib_url, private_tmp, tmp_path):
    name = f"engine/helm-deps-{uuid.uuid4().hex[:8]}"
    url = git_server.create_repo(name)
    push_files(git_server, name, app_chart(lib_url))
    cache = RepoCache(tmp_path / "cache", timeout=60)
    creds = GitCredentials(username=git_server.username, password=git_server.password)
    root = cache.checkout(url, cache.resolve(url, "main", creds), creds)

    objects = render(root, SourceSpec(path="app", tool="helm"), tools)
    assert kinds_and_names(objects) == ["ConfigMap/app-from-lib", "Service/app-app"]
    configmap = next(o for o in objects if o["kind"] == "ConfigMap")
    assert configmap["data"]["greeting"] == "hello from app"  # the parent's values reach it
    # The shared checkout is untouched and no temporary folder (nor credential file) is left.
    assert not (root / "app/charts").exists() and not (root / "app/Chart.lock").exists()
    assert list(private_tmp.iterdir()) == []

    # A new commit that leaves the dependencies alone fetches nothing: it renders even though
    # the registry would now refuse us.
    sha = push_files(git_server, name, {"app/values.yaml": "lib:\n  greeting: changed\n"})
    root = cache.checkout(url, sha, creds)
    refused = dataclasses.replace(tools, helm_registry_config=registry_config(registry, "wrong"))
    again = render(root, SourceSpec(path="app"), refused)
    assert next(o for o in again if o["kind"] == "ConfigMap")["data"]["greeting"] == "changed"

    # Changed dependencies are fetched again: with the wrong password that fails, clearly.
    helm_deps._built.clear()
    with pytest.raises(RenderError) as exc:
        render(root, SourceSpec(path="app"), refused)
    assert f"lib 0.1.0 ({lib_url})" in str(exc.value)
    assert registry.password not in str(exc.value) and "auths" not in str(exc.value)


def test_chart_depending_on_a_helm_repository_renders_it(tools, private_tmp, tmp_path):
    """A classic Helm repository: index.yaml and packaged charts served over HTTP."""
    write_tree(tmp_path / "lib", LIB_CHART)
    served = tmp_path / "served"
    helm = str(tools.helm)
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    subprocess.run([helm, "package", "lib", "-d", str(served)], cwd=tmp_path, env=env,
                   check=True, capture_output=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        url = f"http://127.0.0.1:{server.server_port}"
        subprocess.run([helm, "repo", "index", str(served), "--url", url], env=env, check=True,
                       capture_output=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            root = write_tree(tmp_path / "repo", app_chart(url, version="~0.1"))
            objects = render(root, SourceSpec(path="app"), tools)
        finally:
            server.shutdown()
    assert kinds_and_names(objects) == ["ConfigMap/app-from-lib", "Service/app-app"]
    assert list(private_tmp.iterdir()) == []


def test_unreachable_registry_names_the_dependency(tools, private_tmp, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dependency = f"oci://127.0.0.1:{port}/charts"
    root = write_tree(tmp_path / "repo", app_chart(dependency))
    tools = dataclasses.replace(tools, helm_plain_http=(f"127.0.0.1:{port}",))
    with pytest.raises(RenderError) as exc:
        render(root, SourceSpec(path="app"), tools)
    message = str(exc.value)
    assert message.startswith("app: cannot fetch dependencies lib 0.1.0 (oci://127.0.0.1:")
    assert "connection refused" in message
    assert "Traceback" not in message and tools.helm_registry_config not in message
    assert str(tmp_path) not in message
    assert list(private_tmp.iterdir()) == []

    # A malformed credentials setting is named, its value (passwords) is not shown.
    garbled = dataclasses.replace(tools, helm_registry_config='{"auths": "s3cret"}')
    with pytest.raises(RenderError) as exc:
        render(root, SourceSpec(path="app"), garbled)
    assert "not Docker's config.json" in str(exc.value) and "s3cret" not in str(exc.value)


def test_file_dependencies_inside_the_repository_only(tools, tmp_path):
    root = write_tree(tmp_path / "repo", {
        **app_chart("file://../common/lib"),
        **{f"common/lib/{path}": text for path, text in LIB_CHART.items()}})
    objects = render(root, SourceSpec(path="app"), tools)
    assert kinds_and_names(objects) == ["ConfigMap/app-from-lib", "Service/app-app"]
    assert not (root / "app/charts").exists()

    write_tree(tmp_path / "elsewhere/lib", LIB_CHART)
    (root / "app/Chart.yaml").write_text(app_chart("file://../../elsewhere/lib")["app/Chart.yaml"])
    with pytest.raises(RenderError) as exc:
        render(root, SourceSpec(path="app"), tools)
    assert str(exc.value) == ("app/Chart.yaml: dependency lib 0.1.0 (file://../../elsewhere/lib) "
                              "leads outside the repository")


def test_named_repositories_are_refused_with_the_reason(tools, tmp_path):
    root = write_tree(tmp_path / "repo", app_chart('"@bitnami"'))
    with pytest.raises(RenderError) as exc:
        render(root, SourceSpec(path="app"), tools)
    assert "dependency lib 0.1.0 (@bitnami): repository must be an oci://" in str(exc.value)

    (root / "app/Chart.yaml").write_text("dependencies:\n- name: lib\n  repository: @x\n")
    with pytest.raises(RenderError) as exc:
        render(root, SourceSpec(path="app"), tools)
    assert str(exc.value).startswith("app/Chart.yaml:3: invalid YAML: found character '@'")
