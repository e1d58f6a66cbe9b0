"""An application's render reads only its own folders from a commit: its path and what its files
refer to (a Kustomize base in `../base`, a Jsonnet import, a symlink), not its neighbours'.

Commits are made with the git CLI (plumbing where a file cannot exist on a disk), never through
the code under test.
"""
from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import pytest

from apps.engine.errors import RenderError, SourceError
from apps.engine.source import GitCredentials, RenderTools, RepoCache, SourceSpec, render
from apps.engine.source.render import HelmSpec, JsonnetSpec, export_paths
from tests.engine.test_source import git, manifest, names

# Longer than any file name a Linux file system takes: a commit holding it cannot be exported.
UNEXPORTABLE = "apps/b/" + "x" * 300 + ".yaml"


def commit(git_server, name: str, files: dict[str, str], links: dict[str, str] | None = None,
           unexportable: str | None = None) -> str:
    """Commit `files` and symlinks `links` (path -> target) on main (replacing the tree) and
    push; `unexportable` adds a file with that path through the index only. The new sha."""
    remote = git_server.auth_url(name)
    with tempfile.TemporaryDirectory() as work:
        git("init", "--quiet", "--initial-branch=main", work)
        if "refs/heads/main" in git("ls-remote", remote, cwd=work):
            git("fetch", "--quiet", remote, "main", cwd=work)
            git("reset", "--quiet", "--soft", "FETCH_HEAD", cwd=work)
            git("rm", "--quiet", "-r", "--cached", "--ignore-unmatch", ".", cwd=work)
        for path, text in files.items():
            (Path(work) / path).parent.mkdir(parents=True, exist_ok=True)
            (Path(work) / path).write_text(text)
        for path, target in (links or {}).items():
            (Path(work) / path).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, Path(work) / path)
        git("add", "--all", cwd=work)
        if unexportable:
            blob = git("hash-object", "-w", Path(work) / next(iter(files)), cwd=work)
            git("update-index", "--add", "--cacheinfo", f"100644,{blob},{unexportable}", cwd=work)
        git("commit", "--quiet", "--allow-empty", "-m", "change", cwd=work)
        git("push", "--quiet", remote, "HEAD:refs/heads/main", cwd=work)
        return git("rev-parse", "HEAD", cwd=work)


@pytest.fixture
def repo(git_server):
    name = f"engine/part-{uuid.uuid4().hex[:8]}"
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
    return RenderTools(kustomize=bin_dir / "kustomize", helm=bin_dir / "helm",
                       jsonnet=bin_dir / "jsonnet")


def exported(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir())


BASE = {
    "apps/base/kustomization.yaml": "resources:\n- cm.yaml\n",
    "apps/base/cm.yaml": manifest("ConfigMap", "settings"),
    "apps/a/kustomization.yaml": "resources:\n- ../base\nnamePrefix: a-\n",
    "apps/b/kustomization.yaml": "resources: [: not yaml\n",
}


def test_an_app_renders_from_its_folder_and_its_base_without_its_siblings(
        git_server, repo, cache, creds, tools):
    name, url = repo
    sha = commit(git_server, name, BASE, unexportable=UNEXPORTABLE)
    with pytest.raises(SourceError):  # the whole commit cannot be exported here...
        cache.checkout(url, sha, creds)

    # ... but apps/a does not need apps/b: it renders, with its base.
    spec = SourceSpec(path="apps/a")
    root = cache.checkout(url, sha, creds, paths=export_paths(spec))
    assert names(render(root, spec, tools)) == ["ConfigMap/a-settings"]
    assert exported(root) == ["apps/a/kustomization.yaml", "apps/base/cm.yaml",
                              "apps/base/kustomization.yaml"]

    # A commit touching only the sibling: apps/a's export is the same one, not made again.
    inode = root.stat().st_ino
    again = commit(git_server, name, {**BASE, "apps/b/other.yaml": "x: 1\n"},
                   unexportable=UNEXPORTABLE)
    assert cache.checkout(url, again, creds, paths=["apps/a"]) == root
    assert root.stat().st_ino == inode

    # A commit changing the base: a new export, with the new base.
    changed = commit(git_server, name, {**BASE, "apps/base/cm.yaml": manifest("ConfigMap", "new")},
                     unexportable=UNEXPORTABLE)
    newer = cache.checkout(url, changed, creds, paths=["apps/a"])
    assert newer != root
    assert names(render(newer, spec, tools)) == ["ConfigMap/a-new"]
    assert names(render(root, spec, tools)) == ["ConfigMap/a-settings"]  # the old one intact


def test_jsonnet_imports_symlinks_and_library_paths_are_exported(git_server, repo, cache, creds,
                                                                 tools):
    name, url = repo
    sha = commit(git_server, name, {
        "j/main.jsonnet": 'local lib = import "../lib/cm.libsonnet";\n[lib.cm("j")]\n',
        "lib/cm.libsonnet": '{ cm(n): (import "../vendor/cm.libsonnet") + {metadata: {name: n}} }',
        "vendor/cm.libsonnet": '{ apiVersion: "v1", kind: "ConfigMap" }\n',
        "jlib/named.libsonnet": '{ apiVersion: "v1", kind: "ConfigMap", metadata: {name: "n"} }\n',
        "apps/n/main.jsonnet": 'import "named.libsonnet"\n',
        "shared/cm.yaml": manifest("ConfigMap", "shared"),
        "apps/other/cm.yaml": manifest("ConfigMap", "other"),
    }, links={"apps/s/cm.yaml": "../../shared/cm.yaml"})

    root = cache.checkout(url, sha, creds, paths=["j"])
    assert names(render(root, SourceSpec(path="j"), tools)) == ["ConfigMap/j"]
    assert exported(root) == ["j/main.jsonnet", "lib/cm.libsonnet", "vendor/cm.libsonnet"]

    spec = SourceSpec(path="apps/n", jsonnet=JsonnetSpec(libs=["jlib"]))
    root = cache.checkout(url, sha, creds, paths=export_paths(spec))
    assert names(render(root, spec, tools)) == ["ConfigMap/n"]
    assert "apps/other/cm.yaml" not in exported(root)

    root = cache.checkout(url, sha, creds, paths=["apps/s"])
    assert names(render(root, SourceSpec(path="apps/s"), tools)) == ["ConfigMap/shared"]
    assert exported(root) == ["apps/s/cm.yaml", "shared/cm.yaml"]


def test_what_cannot_be_told_gets_the_whole_commit(git_server, repo, cache, creds, tools):
    """A reference out of the repository, a folder symlink or a missing path: the render sees
    the whole commit, as it always did, and says what is wrong in the same words."""
    name, url = repo
    sha = commit(git_server, name, {
        "apps/out/kustomization.yaml": "resources:\n- ../../../elsewhere\n",
        "apps/other/cm.yaml": manifest("ConfigMap", "other"),
        "real/cm.yaml": manifest("ConfigMap", "real"),
        "real/kustomization.yaml": "resources:\n- cm.yaml\n",
        "apps/dirlink/kustomization.yaml": "resources:\n- base\n",
    }, links={"apps/dirlink/base": "../../real"})

    for path in ("apps/out", "apps/missing", "apps/dirlink", "."):
        root = cache.checkout(url, sha, creds, paths=[path])
        assert "apps/other/cm.yaml" in exported(root), path  # the whole commit
    with pytest.raises(RenderError, match="apps/out"):
        render(cache.checkout(url, sha, creds, paths=["apps/out"]), SourceSpec(path="apps/out"),
               tools)
    with pytest.raises(RenderError, match="does not exist"):
        render(cache.checkout(url, sha, creds, paths=["apps/missing"]),
               SourceSpec(path="apps/missing"), tools)
    root = cache.checkout(url, sha, creds, paths=["apps/dirlink"])
    assert names(render(root, SourceSpec(path="apps/dirlink"), tools)) == ["ConfigMap/real"]


def test_a_helm_chart_gets_its_file_dependency_and_values_folder(git_server, repo, cache, creds,
                                                                 tools):
    name, url = repo
    sha = commit(git_server, name, {
        "charts/web/Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\ndependencies:\n"
                                 "- name: common\n  version: 0.1.0\n"
                                 "  repository: file://../../libs/common\n",
        "charts/web/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                                        "  name: web-{{ .Values.env }}\n",
        "libs/common/Chart.yaml": "apiVersion: v2\nname: common\nversion: 0.1.0\n",
        "libs/common/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                                         "  name: common\n",
        "envs/prod/values.yaml": "env: prod\n",
        "charts/other/Chart.yaml": "not: [a chart\n",
    })
    spec = SourceSpec(path="charts/web",
                      helm=HelmSpec(values_files=["../../envs/prod/values.yaml"]))
    root = cache.checkout(url, sha, creds, paths=export_paths(spec))
    assert sorted(names(render(root, spec, tools))) == ["ConfigMap/common", "ConfigMap/web-prod"]
    assert not (root / "charts/other").exists()


def test_the_same_commit_in_two_repositories_is_read_from_each(git_server, cache, creds,
                                                               monkeypatch):
    """Two repositories can hold the very same commit (same files, author and second); the
    second one's cache must still be fetched before its files are read."""
    monkeypatch.setenv("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
    files = {"apps/a/cm.yaml": manifest("ConfigMap", "settings")}
    exports = []
    for _ in range(2):
        name = f"engine/twin-{uuid.uuid4().hex[:8]}"
        git_server.create_repo(name)
        sha = commit(git_server, name, files)
        exports.append((sha, cache.checkout(git_server.url(name), sha, creds, paths=["apps/a"])))
    assert exports[0][0] == exports[1][0]
    assert [exported(root) for _, root in exports] == [["apps/a/cm.yaml"]] * 2
