"""The engine's source side on real systems: git over smart HTTP with Basic auth (the local
stack's Git server), and the real kustomize and helm binaries of the local stack.

Repositories are filled with the git CLI (`push_files`), never through the code under test.
"""
from __future__ import annotations

import os
import socket
import stat
import tempfile
import threading
import time
import uuid
from pathlib import Path

from tests import gitcli

import pytest
import yaml

from apps.engine.errors import RenderError, SourceError
from apps.engine.source import (GitCredentials, HelmSpec, KustomizeSpec, RenderTools, RepoCache,
                                SourceSpec, detect_tool, render)

AUTHOR = "GitOps Bot <bot@example.test>"


# --- helpers ----------------------------------------------------------------------------------
def git(*args, cwd=None, check=True) -> str:
    return gitcli.git(*args, cwd=cwd, check=check).stdout.strip()


def push_files(git_server, name: str, files: dict[str, str | None], message: str = "change",
               branch: str = "main", tag: str | None = None, annotated: bool = False) -> str:
    """Commit `files` (path -> text, None deletes) on top of `branch` and push; the new sha."""
    remote = git_server.auth_url(name)
    with tempfile.TemporaryDirectory() as work:
        git("init", "--quiet", f"--initial-branch={branch}", work)
        if f"refs/heads/{branch}" in git("ls-remote", remote, cwd=work):
            git("fetch", "--quiet", remote, branch, cwd=work)
            git("reset", "--quiet", "--hard", "FETCH_HEAD", cwd=work)
        for path, text in files.items():
            target = Path(work) / path
            if text is None:
                target.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
        git("add", "--all", cwd=work)
        git("commit", "--quiet", "--allow-empty", "-m", message, cwd=work)
        git("push", "--quiet", remote, f"HEAD:refs/heads/{branch}", cwd=work)
        if tag:
            git("tag", *(["-a", "-m", f"release {tag}"] if annotated else []), tag, cwd=work)
            git("push", "--quiet", remote, f"refs/tags/{tag}", cwd=work)
        return git("rev-parse", "HEAD", cwd=work)


def tree_of(git_server, name: str, rev: str) -> str:
    with tempfile.TemporaryDirectory() as work:
        git("init", "--quiet", "--bare", work)
        git("fetch", "--quiet", git_server.auth_url(name), "+refs/heads/*:refs/heads/*", cwd=work)
        return git("rev-parse", f"{rev}^{{tree}}", cwd=work)


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


def manifest(kind: str, name: str, **extra) -> str:
    return yaml.safe_dump({"apiVersion": "v1", "kind": kind, "metadata": {"name": name}, **extra})


def names(objects: list[dict]) -> list[str]:
    return [f"{o['kind']}/{o['metadata']['name']}" for o in objects]


@pytest.fixture
def repo(git_server):
    """A new empty repository: (name, url)."""
    name = f"engine/src-{uuid.uuid4().hex[:8]}"
    return name, git_server.create_repo(name)


@pytest.fixture
def creds(git_server) -> GitCredentials:
    return GitCredentials(username=git_server.username, password=git_server.password)


@pytest.fixture
def cache(tmp_path) -> RepoCache:
    return RepoCache(tmp_path / "cache", timeout=60)


@pytest.fixture(scope="module")
def tools() -> RenderTools:
    from tests.localstack.kube import cluster_bin_dir
    bin_dir = cluster_bin_dir()
    return RenderTools(kustomize=bin_dir / "kustomize", helm=bin_dir / "helm")


# --- git: revisions ---------------------------------------------------------------------------
def test_resolve_branch_annotated_tag_short_sha_and_head(git_server, repo, cache, creds):
    name, url = repo
    first = push_files(git_server, name, {"a.yaml": manifest("ConfigMap", "a")}, tag="v1",
                       annotated=True)
    light = push_files(git_server, name, {"b.yaml": manifest("ConfigMap", "b")}, tag="v2")
    head = push_files(git_server, name, {"c.yaml": manifest("ConfigMap", "c")})
    dev = push_files(git_server, name, {"d.yaml": manifest("ConfigMap", "d")}, branch="dev")

    refs = cache.ls_remote(url, creds)
    assert refs["refs/heads/main"] == head and refs["HEAD"] == head
    assert refs["refs/tags/v1"] != first and refs["refs/tags/v1^{}"] == first  # a tag object

    assert cache.resolve(url, "main", creds) == head
    assert cache.resolve(url, "dev", creds) == dev
    assert cache.resolve(url, "refs/heads/dev", creds) == dev
    assert cache.resolve(url, "v1", creds) == first  # annotated tag peeled to its commit
    assert cache.resolve(url, "v2", creds) == light
    assert cache.resolve(url, "HEAD", creds) == head
    assert cache.resolve(url, "", creds) == head
    assert cache.resolve(url, first, creds) == first
    assert cache.resolve(url, first[:8], creds) == first
    assert cache.resolve(url, light[:7].upper(), creds) == light


def test_fetch_refs_answers_as_ls_remote_with_the_commits_fetched(git_server, repo, cache, creds):
    """A push's refresh lists the refs and fetches their commits in one call to the server."""
    name, url = repo
    assert cache.fetch_refs(url, creds) == {}  # an empty repository: no HEAD to fetch
    first = push_files(git_server, name, {"a.yaml": manifest("ConfigMap", "a")}, tag="v1",
                       annotated=True)
    push_files(git_server, name, {"b.yaml": manifest("ConfigMap", "b")}, tag="v2")
    push_files(git_server, name, {"d.yaml": manifest("ConfigMap", "d")}, branch="dev")
    head = push_files(git_server, name, {"c.yaml": manifest("ConfigMap", "c")})

    refs = cache.fetch_refs(url, creds)
    assert refs == cache.ls_remote(url, creds)
    assert refs["HEAD"] == head and refs["refs/tags/v1^{}"] == first
    # Already in the cache: no credentials needed to compare the two commits.
    assert sorted(cache.changed_files(url, first, head)) == ["b.yaml", "c.yaml"]

    git("push", "--quiet", git_server.auth_url(name), ":refs/heads/dev", ":refs/tags/v2")
    assert cache.fetch_refs(url, creds) == cache.ls_remote(url, creds)  # deleted refs go too
    assert "refs/heads/dev" not in cache.fetch_refs(url, creds)
    with pytest.raises(SourceError, match="authentication failed"):
        cache.fetch_refs(url, GitCredentials(git_server.username, "wrong"))


def test_unknown_revision_is_a_source_error(git_server, repo, cache, creds):
    name, url = repo
    push_files(git_server, name, {"a.yaml": manifest("ConfigMap", "a")})
    with pytest.raises(SourceError, match=rf"revision 'v9' not found in {url}$"):
        cache.resolve(url, "v9", creds)
    with pytest.raises(SourceError, match="revision 'deadbeef' not found"):
        cache.resolve(url, "deadbeef", creds)
    with pytest.raises(SourceError, match="not found"):
        cache.checkout(url, "0" * 40, creds)


def test_wrong_password_is_an_authentication_error_without_the_password(git_server, repo, cache):
    name, url = repo
    push_files(git_server, name, {"a.yaml": manifest("ConfigMap", "a")})
    wrong = f"wrong-{uuid.uuid4().hex}"
    with pytest.raises(SourceError) as exc:
        cache.resolve(url, "main", GitCredentials(git_server.username, wrong))
    assert str(exc.value) == f"authentication failed for {url}"
    assert wrong not in str(exc.value)

    # A password written into the URL is taken out of it, and out of the message too.
    in_url = url.replace("http://", f"http://{git_server.username}:{wrong}@")
    with pytest.raises(SourceError, match="authentication failed") as exc:
        cache.checkout(in_url, "a" * 40)
    assert wrong not in str(exc.value)

    with pytest.raises(SourceError, match="authentication failed"):  # no credentials at all
        cache.ls_remote(url)


def test_credentials_never_reach_the_disk(git_server, repo, cache, creds):
    name, url = repo
    sha = push_files(git_server, name, {"a.yaml": manifest("ConfigMap", "a")})
    cache.checkout(url, cache.resolve(url, "main", creds), creds)
    cache.commit_files(url, "main", {"b.yaml": b"x: 1\n"}, "add b", AUTHOR, creds)
    assert sha != cache.resolve(url, "main", creds)
    secret = git_server.password.encode()
    for dirpath, _, filenames in os.walk(cache.root):
        for filename in filenames:
            path = Path(dirpath) / filename
            if not path.is_symlink():
                assert secret not in path.read_bytes(), path


def test_unreachable_server(cache):
    with pytest.raises(SourceError, match=r"^cannot reach http://127\.0\.0\.1:1/nothing\.git"):
        cache.resolve("http://127.0.0.1:1/nothing.git", "main")


# --- git: checkouts ---------------------------------------------------------------------------
def test_checkout_fetches_into_the_cache_and_reuses_exports(git_server, repo, cache, creds):
    name, url = repo
    first = push_files(git_server, name, {"app/cm.yaml": manifest("ConfigMap", "one")})
    path = cache.checkout(url, first, creds)
    assert yaml.safe_load((path / "app/cm.yaml").read_text())["metadata"]["name"] == "one"
    assert not (path / ".git").exists()
    assert not (path / "app/cm.yaml").stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)

    bare = cache.repo_dir(url) / "repo.git"
    bare_inode = bare.stat().st_ino
    (bare / "marker").write_text("still the same clone")
    export_inode = path.stat().st_ino

    # The same commit again: the export is reused as is, without even asking the server
    # (credentials that would fail prove it).
    assert cache.checkout(url, first, GitCredentials("nobody", "wrong")) == path
    assert path.stat().st_ino == export_inode

    # A new commit: fetched into the same bare repository, not cloned anew.
    second = push_files(git_server, name, {"app/cm.yaml": manifest("ConfigMap", "two")})
    other = cache.checkout(url, second, creds)
    assert other != path and other.name == second
    assert yaml.safe_load((other / "app/cm.yaml").read_text())["metadata"]["name"] == "two"
    assert bare.stat().st_ino == bare_inode and (bare / "marker").exists()
    assert yaml.safe_load((path / "app/cm.yaml").read_text())["metadata"]["name"] == "one"

    # A short sha already in the cache needs no server either.
    assert cache.checkout(url, second[:10], GitCredentials("nobody", "wrong")) == other


def test_concurrent_checkouts_share_one_export(git_server, repo, cache, creds):
    name, url = repo
    shas = [push_files(git_server, name, {"cm.yaml": manifest("ConfigMap", f"v{i}")})
            for i in range(2)]
    results, errors = [], []

    def work(sha):
        try:
            results.append((sha, cache.checkout(url, sha, creds)))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(shas[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert {sha: path for sha, path in results} == {
        sha: cache.repo_dir(url) / "checkouts" / sha for sha in shas}
    assert sorted(p.name for p in (cache.repo_dir(url) / "checkouts").iterdir()) == sorted(shas)


# --- git: writing -----------------------------------------------------------------------------
def test_commit_files_then_resolve_shows_the_new_commit(git_server, repo, cache, creds):
    name, url = repo
    base = push_files(git_server, name, {"app/values.yaml": "tag: '1.0'\n", "old.txt": "x\n"})
    new = cache.commit_files(url, "main", {"app/values.yaml": b"tag: '1.1'\n",
                                           "app/new/extra.yaml": b"a: b\n", "old.txt": None},
                             "bump to 1.1", AUTHOR, creds)
    assert new != base
    assert cache.resolve(url, "main", creds) == new
    tree = cache.checkout(url, new, creds)
    assert (tree / "app/values.yaml").read_text() == "tag: '1.1'\n"
    assert (tree / "app/new/extra.yaml").read_text() == "a: b\n"
    assert not (tree / "old.txt").exists()

    with tempfile.TemporaryDirectory() as work:
        git("clone", "--quiet", git_server.auth_url(name), work)
        last = git("log", "-1", "--format=%an <%ae>|%s|%P", cwd=work)
        assert last == f"{AUTHOR}|bump to 1.1|{base}"

    # Nothing to change: no empty commit.
    assert cache.commit_files(url, "main", {"app/values.yaml": b"tag: '1.1'\n"}, "again",
                              AUTHOR, creds) == new
    with pytest.raises(SourceError, match="branch 'nope' not found"):
        cache.commit_files(url, "nope", {"a": b""}, "m", AUTHOR, creds)
    with pytest.raises(SourceError, match="invalid path"):
        cache.commit_files(url, "main", {"../escape": b""}, "m", AUTHOR, creds)


def test_commit_files_reapplies_once_when_the_branch_moved(git_server, repo, cache, creds,
                                                           monkeypatch):
    name, url = repo
    push_files(git_server, name, {"a.txt": "a\n"})
    cache.resolve(url, "main", creds)
    cache.checkout(url, cache.resolve(url, "main", creds), creds)  # the cache knows main
    theirs = push_files(git_server, name, {"theirs.txt": "t\n"})  # someone else pushes

    # Skip our first fetch, so our commit is made on the stale head and the push is refused.
    real_fetch, calls = cache._fetch, []

    def stale_first(*args):
        calls.append(args)
        if len(calls) > 1:
            real_fetch(*args)
    monkeypatch.setattr(cache, "_fetch", stale_first)
    ours = cache.commit_files(url, "main", {"ours.txt": b"o\n"}, "ours", AUTHOR, creds)
    assert len(calls) == 2  # refused once, fetched, re-applied
    tree = cache.checkout(url, ours, creds)
    assert (tree / "theirs.txt").read_text() == "t\n" and (tree / "ours.txt").read_text() == "o\n"
    with tempfile.TemporaryDirectory() as work:
        git("clone", "--quiet", git_server.auth_url(name), work)
        assert git("log", "-1", "--format=%P", cwd=work) == theirs


def test_revert_to_commits_the_target_tree_on_top(git_server, repo, cache, creds):
    name, url = repo
    target = push_files(git_server, name, {"a.yaml": "v: 1\n", "keep.yaml": "k\n"})
    push_files(git_server, name, {"a.yaml": "v: 2\n", "b.yaml": "new\n"})
    head = push_files(git_server, name, {"keep.yaml": None})

    new = cache.revert_to(url, "main", target, f"Revert to {target[:7]}", AUTHOR, creds)
    assert new not in (head, target)
    assert cache.resolve(url, "main", creds) == new
    assert tree_of(git_server, name, new) == tree_of(git_server, name, target)
    with tempfile.TemporaryDirectory() as work:
        git("clone", "--quiet", git_server.auth_url(name), work)
        assert git("log", "-1", "--format=%P", cwd=work) == head  # on top, history kept
    # Already equal: nothing to commit.
    assert cache.revert_to(url, "main", target, "again", AUTHOR, creds) == new


# --- render: directory ------------------------------------------------------------------------
def test_directory_recursive_multi_document_json_and_list(tmp_path, tools):
    root = write_tree(tmp_path, {
        "apps/b.yaml": "---\n" + manifest("ConfigMap", "b1") + "---\n\n---\n" +
                       manifest("ConfigMap", "b2"),
        "apps/a.yml": manifest("Secret", "a", stringData={"when": "2024-01-01T00:00:00Z"}),
        "apps/nested/deep/c.json": '{"apiVersion": "v1", "kind": "Service",'
                                   ' "metadata": {"name": "c"}}',
        "apps/nested/list.yaml": yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "l1"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "l2"}}]}),
        "apps/README.md": "not a manifest",
        "apps/empty.yaml": "",
        "other/x.yaml": manifest("ConfigMap", "outside-path"),
    })
    objects = render(root, SourceSpec(path="apps"), tools)
    assert names(objects) == ["Secret/a", "ConfigMap/b1", "ConfigMap/b2", "Service/c",
                              "ConfigMap/l1", "ConfigMap/l2"]
    assert objects[0]["stringData"]["when"] == "2024-01-01T00:00:00Z"  # stays a string
    assert detect_tool(root / "apps") == "directory"

    assert names(render(root, SourceSpec(path="apps", recurse=False), tools)) == [
        "Secret/a", "ConfigMap/b1", "ConfigMap/b2"]
    assert names(render(root, SourceSpec(path="apps", include="nested/*"), tools)) == [
        "Service/c", "ConfigMap/l1", "ConfigMap/l2"]
    assert names(render(root, SourceSpec(path="apps", include="*.yaml", exclude="nested/*"),
                        tools)) == ["ConfigMap/b1", "ConfigMap/b2"]
    assert names(render(root, SourceSpec(path="apps", include="{*.json,a.yml}"), tools)) == [
        "Secret/a", "Service/c"]
    assert len(render(root, SourceSpec(), tools)) == 7  # the whole repository


def test_malformed_yaml_names_file_and_line(tmp_path, tools):
    root = write_tree(tmp_path, {"base/ok.yaml": manifest("ConfigMap", "ok"),
                                 "base/bad.yaml": "apiVersion: v1\nkind: ConfigMap\n"
                                                  "metadata:\n  name: x\n  labels: [a, b\n"})
    with pytest.raises(RenderError) as exc:
        render(root, SourceSpec(path="base"), tools)
    assert exc.value.path == "base/bad.yaml" and exc.value.line in (5, 6)
    assert str(exc.value).startswith(f"base/bad.yaml:{exc.value.line}: invalid YAML")

    write_tree(tmp_path, {"j/bad.json": '{\n  "apiVersion": "v1",\n  "kind" "ConfigMap"\n}'})
    with pytest.raises(RenderError, match=r"^j/bad\.json:3: invalid JSON"):
        render(root, SourceSpec(path="j"), tools)


def test_objects_must_have_kind_and_name(tmp_path, tools):
    root = write_tree(tmp_path, {"m/a.yaml": manifest("ConfigMap", "a") + "---\n"
                                             "apiVersion: v1\nmetadata:\n  name: nokind\n"})
    with pytest.raises(RenderError, match=r"^m/a\.yaml:6: document 2: object has no kind$"):
        render(root, SourceSpec(path="m"), tools)
    write_tree(tmp_path, {"n/a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n"})
    with pytest.raises(RenderError, match="n/a.yaml:1: document 1: object has no metadata.name"):
        render(root, SourceSpec(path="n"), tools)
    write_tree(tmp_path, {"s/a.yaml": "just a string\n"})
    with pytest.raises(RenderError, match="s/a.yaml:1: document 1: not a Kubernetes object"):
        render(root, SourceSpec(path="s"), tools)


def test_paths_must_exist_and_stay_in_the_repository(tmp_path, tools):
    root = write_tree(tmp_path / "repo", {"apps/a.yaml": manifest("ConfigMap", "a")})
    write_tree(tmp_path, {"secret/creds.yaml": manifest("Secret", "stolen")})
    with pytest.raises(RenderError, match="^missing: source path does not exist"):
        render(root, SourceSpec(path="missing"), tools)
    with pytest.raises(RenderError, match="outside the repository"):
        render(root, SourceSpec(path="../secret"), tools)
    (root / "apps/link.yaml").symlink_to(tmp_path / "secret/creds.yaml")
    with pytest.raises(RenderError, match="^apps/link.yaml: symlink points outside"):
        render(root, SourceSpec(path="apps"), tools)
    (root / "apps/link.yaml").unlink()
    (root / "escape").symlink_to(tmp_path / "secret")
    with pytest.raises(RenderError, match="outside the repository"):
        render(root, SourceSpec(path="escape"), tools)
    (root / "apps/inside.yaml").symlink_to(root / "apps/a.yaml")  # within the repo: fine
    assert names(render(root, SourceSpec(path="apps"), tools)) == ["ConfigMap/a"] * 2


# --- render: kustomize ------------------------------------------------------------------------
KUSTOMIZE_REPO = {
    "base/kustomization.yaml": "resources:\n- deployment.yaml\n- service.yaml\n",
    "base/deployment.yaml": yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}}}),
    "base/service.yaml": yaml.safe_dump({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
    "overlays/prod/kustomization.yaml": "resources:\n- ../../base\nnamePrefix: prod-\n"
                                        "patches:\n- path: replicas.yaml\n",
    "overlays/prod/replicas.yaml": "apiVersion: apps/v1\nkind: Deployment\n"
                                   "metadata:\n  name: web\nspec:\n  replicas: 4\n",
}


def test_kustomize_overlay_with_prefix_and_patch(git_server, repo, cache, creds, tools):
    name, url = repo
    sha = push_files(git_server, name, KUSTOMIZE_REPO)
    root = cache.checkout(url, cache.resolve(url, "main", creds), creds)
    assert root.name == sha and detect_tool(root / "overlays/prod") == "kustomize"

    objects = render(root, SourceSpec(path="overlays/prod"), tools)
    by_name = {f"{o['kind']}/{o['metadata']['name']}": o for o in objects}
    assert set(by_name) == {"Deployment/prod-web", "Service/prod-web"}
    assert by_name["Deployment/prod-web"]["spec"]["replicas"] == 4

    overridden = render(root, SourceSpec(path="overlays/prod", kustomize=KustomizeSpec(
        name_suffix="-v2", images=["nginx=registry.local/nginx:1.27"])), tools)
    deployment = next(o for o in overridden if o["kind"] == "Deployment")
    assert deployment["metadata"]["name"] == "prod-web-v2"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "registry.local/nginx:1.27"


def test_kustomize_error_is_a_render_error(tmp_path, tools):
    root = write_tree(tmp_path, {"k/kustomization.yaml": "resources:\n- missing.yaml\n"})
    with pytest.raises(RenderError) as exc:
        render(root, SourceSpec(path="k"), tools)
    assert exc.value.path == "k" and "missing.yaml" in str(exc.value)
    assert str(tmp_path) not in str(exc.value)  # paths are the repository's, not the cache's


# --- render: helm -----------------------------------------------------------------------------
CHART = {
    "chart/Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    "chart/values.yaml": "replicaCount: 1\nimage:\n  repository: nginx\n  tag: '1.0'\n",
    "chart/values-prod.yaml": "replicaCount: 3\nimage:\n  tag: '2.0'\n",
    "chart/crds/widget.yaml": yaml.safe_dump({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.test"}}),
    "chart/templates/deployment.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
  namespace: {{ .Release.Namespace }}
spec:
  replicas: {{ .Values.replicaCount }}
  template:
    spec:
      containers:
      - name: web
        image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
        args: [{{ .Values.greeting | quote }}]
""",
}


def test_helm_values_file_inline_values_and_parameters(tmp_path, tools):
    root = write_tree(tmp_path, CHART)
    assert detect_tool(root / "chart") == "helm"
    spec = SourceSpec(path="chart", helm=HelmSpec(
        release_name="shop", values_files=["values-prod.yaml"],
        values="image:\n  repository: registry.local/web\n",
        parameters={"image.tag": "3.1", "greeting": "hello, world"}))
    objects = render(root, spec, tools, namespace="prod")
    assert names(objects) == ["CustomResourceDefinition/widgets.example.test",
                              "Deployment/shop-web"]
    deployment = objects[1]
    assert deployment["metadata"]["namespace"] == "prod"
    assert deployment["spec"]["replicas"] == 3
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.local/web:3.1"
    assert container["args"] == ["hello, world"]  # a comma in a --set value stays in it

    defaults = render(root, SourceSpec(path="chart", helm=HelmSpec(namespace="qa")), tools)
    assert defaults[1]["metadata"]["name"] == "chart-web"
    assert defaults[1]["metadata"]["namespace"] == "qa"
    assert defaults[1]["spec"]["replicas"] == 1

    with pytest.raises(RenderError, match="values file 'nope.yaml' not found"):
        render(root, SourceSpec(path="chart", helm=HelmSpec(values_files=["nope.yaml"])), tools)
    with pytest.raises(RenderError, match="outside the repository"):
        render(root, SourceSpec(path="chart", helm=HelmSpec(values_files=["../../x.yaml"])),
               tools)


def test_helm_template_error_names_the_template(tmp_path, tools):
    root = write_tree(tmp_path, {**CHART, "chart/templates/broken.yaml":
                                 "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                                 "  name: {{ .Values.missing.field }}\n"})
    with pytest.raises(RenderError) as exc:
        render(root, SourceSpec(path="chart"), tools)
    assert exc.value.path == "chart"
    assert "templates/broken.yaml:4" in str(exc.value)


def test_git_calls_time_out(tmp_path):
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/repo.git"
        started = time.monotonic()
        with pytest.raises(SourceError, match=rf"^git ls-remote timed out after 2 s on {url}$"):
            RepoCache(tmp_path / "cache", timeout=2).resolve(url, "main")
        assert time.monotonic() - started < 10


def test_a_kustomization_cannot_reach_another_repositorys_checkout(git_server, cache, creds, tools):
    """Checkout folders are named with a keyed hash: `../../<sha256 of the URL>` leads nowhere."""
    import hashlib

    secret_name, other_name = (f"engine/iso-{uuid.uuid4().hex[:8]}" for _ in range(2))
    secret_url, other_url = git_server.create_repo(secret_name), git_server.create_repo(other_name)
    secret_sha = push_files(git_server, secret_name, {
        "kustomization.yaml": "resources:\n- secret.yaml\n",
        "secret.yaml": manifest("ConfigMap", "private-settings")})
    cache.checkout(secret_url, secret_sha, creds)
    guessed = f"../../../{hashlib.sha256(secret_url.encode()).hexdigest()}/checkouts/{secret_sha}"
    other_sha = push_files(git_server, other_name, {
        "kustomization.yaml": f"resources:\n- {guessed}\n"})
    root = cache.checkout(other_url, other_sha, creds)
    with pytest.raises(RenderError):
        render(root, SourceSpec(), tools)
    assert cache.repo_dir(secret_url).name != hashlib.sha256(secret_url.encode()).hexdigest()


def test_old_exports_are_removed_but_recent_ones_kept(git_server, repo, cache, creds, monkeypatch):
    from apps.engine.source import git as git_module

    name, url = repo
    shas = [push_files(git_server, name, {"f.txt": str(i)}) for i in range(3)]
    cache.keep_exports = 1
    first = cache.checkout(url, shas[0], creds)
    second = cache.checkout(url, shas[1], creds)
    assert first.is_dir()  # recently used: kept through the grace period
    monkeypatch.setattr(git_module, "EXPORT_GRACE_SECONDS", -1)
    third = cache.checkout(url, shas[2], creds)
    assert third.is_dir() and not first.exists() and not second.exists()
    assert (cache.checkout(url, shas[0], creds) / "f.txt").read_text() == "0"  # made again
