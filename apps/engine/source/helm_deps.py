"""Helm chart dependencies: `helm dependency build`, as Argo CD's repo-server runs it before
`helm template`, for a chart whose Chart.yaml lists dependencies that its charts/ folder lacks.

The checkout is shared by every application of a commit, so the build runs on a private copy
(laid out as in the repository, so `file://../x` still means the same folder), with helm's
cache, config and data folders in the same temporary folder, removed afterwards. What a build
put into charts/ is remembered per (Chart.yaml, Chart.lock, charts/, file:// folders): a render
of another commit that did not touch them fetches nothing.

Dependencies come from `oci://` registries, `https://` (or `http://`) Helm repositories, or
`file://` folders inside the repository. Registry credentials (Docker's config.json format) are
handed to helm as an in-memory file, never on a command line or a disk.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import tarfile
import time
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from threading import Lock
from urllib.parse import urlsplit

import yaml

from ..errors import RenderError
from .render import RenderTools, _rel, _tool

REMOTE_SCHEMES = ("oci", "https", "http")
UNLOCKED_TTL = 3600  # without Chart.lock a version range may resolve to a newer release later


def chart_to_template(root: Path, src: Path, tools: RenderTools, tmp: Path) -> tuple[Path, Path]:
    """(chart folder, repository root of that folder) to run `helm template` on: `src` itself
    when charts/ holds every dependency, else a copy under `tmp` with them built."""
    dependencies = _dependencies(root, src)
    present = _vendored_names(src / "charts")
    missing = [d for d in dependencies if d["name"] not in present]
    if not missing:
        return src, root
    local = []
    for dep in missing:
        scheme = urlsplit(dep["repository"]).scheme
        if scheme == "file":
            local.append(_local_folder(root, src, dep))
        elif scheme not in REMOTE_SCHEMES:
            raise RenderError(f"dependency {_describe(dep)}: repository must be an oci://, "
                              "https:// or file:// URL (named repositories need `helm repo add`, "
                              "which is not supported)", _rel(root, src / "Chart.yaml"))
    tree = tmp / "tree"
    chart = tree / src.relative_to(root)
    try:
        for folder in [src] + local:
            shutil.copytree(folder, tree / folder.relative_to(root), symlinks=False,
                            dirs_exist_ok=True)
    except (OSError, shutil.Error) as exc:
        raise RenderError(f"cannot copy the chart to build its dependencies: {exc}",
                          _rel(root, src)) from None
    key = _cache_key(src, local, tools)
    built = _built.get(key)
    if built is None:
        built = _build(root, src, chart, missing, tools, tmp)
        _built.put(key, built, ttl=None if (src / "Chart.lock").is_file() else UNLOCKED_TTL)
    _restore(chart / "charts", built)
    return chart, tree


def _dependencies(root: Path, src: Path) -> list[dict]:
    where = _rel(root, src / "Chart.yaml")
    try:
        meta = yaml.safe_load((src / "Chart.yaml").read_text()) or {}
    except OSError as exc:
        raise RenderError(f"cannot read: {exc.strerror}", where) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise RenderError(f"invalid YAML: {getattr(exc, 'problem', None) or exc}", where,
                          mark.line + 1 if mark else None) from None
    dependencies = (meta.get("dependencies") or []) if isinstance(meta, dict) else []
    if not isinstance(dependencies, list) or not all(
            isinstance(d, dict) and isinstance(d.get("name"), str) for d in dependencies):
        raise RenderError("dependencies must be a list of entries with a name", where)
    return [{**d, "repository": str(d.get("repository") or "")} for d in dependencies]


def _vendored_names(charts: Path) -> set[str]:
    """Names of the charts in a charts/ folder, unpacked or packaged (as helm reads them)."""
    names = set()
    if not charts.is_dir():
        return names
    for entry in charts.iterdir():
        try:
            if entry.is_dir() and (entry / "Chart.yaml").is_file():
                names.add((yaml.safe_load((entry / "Chart.yaml").read_text()) or {}).get("name"))
            elif entry.name.endswith(".tgz"):
                with tarfile.open(entry) as archive:
                    member = next(m for m in archive if m.name.count("/") == 1
                                  and m.name.endswith("/Chart.yaml"))
                    names.add((yaml.safe_load(archive.extractfile(member)) or {}).get("name"))
        except (OSError, tarfile.TarError, yaml.YAMLError, StopIteration, AttributeError):
            continue  # not a chart: `helm template` says so in its own words
    return names


def _local_folder(root: Path, src: Path, dep: dict) -> Path:
    """The folder of a file:// dependency; it must stay inside the repository (the copy we
    build in holds only the repository, and another checkout is none of this app's business)."""
    folder = (src / dep["repository"][len("file://"):]).resolve()
    if folder != root and root not in folder.parents:
        raise RenderError(f"dependency {_describe(dep)} leads outside the repository",
                          _rel(root, src / "Chart.yaml"))
    if not folder.is_dir():
        raise RenderError(f"dependency {_describe(dep)} is not a folder",
                          _rel(root, src / "Chart.yaml"))
    return folder


def _build(root: Path, src: Path, chart: Path, missing: list[dict], tools: RenderTools,
           tmp: Path) -> dict[str, bytes]:
    argv = [str(tools.helm), "dependency", "build", str(chart)]
    if _plain_http(root, src, tools):
        argv.append("--plain-http")
    with private_helm(tmp, tools.helm_registry_config) as (env, fds, _):
        try:
            _tool(argv, root, chart, tools.timeout, "helm dependency build", env=env,
                  pass_fds=fds)
        except RenderError as exc:
            message = str(exc).split("helm dependency build ", 1)[-1]
            message = re.sub(r"//[^/@\s]+@", "//", message.replace(f"{tmp}/tree/", ""))
            raise RenderError(f"cannot fetch dependencies {', '.join(map(_describe, missing))}: "
                              f"helm dependency build {message}", _rel(root, src)) from None
    charts = chart / "charts"
    return {p.name: p.read_bytes() for p in sorted(charts.iterdir()) if p.is_file()}


@contextmanager
def private_helm(tmp: Path, registry_config: str = "", files: dict[str, bytes] | None = None):
    """(environment, fds to pass, {name: path}) for a helm run whose cache, config and data
    folders are under `tmp`, with the registry credentials (Docker's config.json text) and
    `files` (e.g. a repositories.yaml holding a password) as in-memory files the child reads
    at /proc/self/fd/N: never on a command line, never on a disk. Shared with chart.py."""
    home = tmp / "helm-home"
    env = {f"HELM_{k}_HOME": str(home / k.lower()) for k in ("CACHE", "CONFIG", "DATA")}
    # No fallback to a Docker login of the server's user.
    env.update(HOME=str(home), DOCKER_CONFIG=str(home / "docker"))
    fds, paths = [], {}

    def in_memory(name: str, data: bytes) -> str:
        fd = os.memfd_create(f"gitops-ui-{name}")
        fds.append(fd)
        os.write(fd, data)
        return f"/proc/self/fd/{fd}"

    try:
        if registry_config:
            env["HELM_REGISTRY_CONFIG"] = in_memory("helm-registry",
                                                    _registry_config(registry_config))
        else:
            env["HELM_REGISTRY_CONFIG"] = str(home / "registry.json")  # absent: anonymous
        for name, data in (files or {}).items():
            paths[name] = in_memory(name, data)
        yield env, tuple(fds), paths
    finally:
        for fd in fds:
            os.close(fd)


def _plain_http(root: Path, src: Path, tools: RenderTools) -> bool:
    """Whether the chart's OCI registries are reached over plain HTTP: helm applies
    --plain-http to every one of them, so a chart cannot mix both kinds."""
    hosts = {urlsplit(d["repository"]).netloc for d in _dependencies(root, src)
             if d["repository"].startswith("oci://")}
    plain = hosts & set(tools.helm_plain_http)
    if plain and plain != hosts:
        raise RenderError("helm reaches all OCI registries of a chart over plain HTTP or none: "
                          f"{', '.join(sorted(plain))} is plain HTTP, "
                          f"{', '.join(sorted(hosts - plain))} is not", _rel(root, src))
    return bool(plain)


def _registry_config(value: str) -> bytes:
    """Docker's config.json; `username`/`password` entries become `auth` as helm wants."""
    try:
        config = json.loads(value)
        auths = config["auths"]
        for entry in auths.values():
            if "username" in entry and "auth" not in entry:
                pair = f"{entry.pop('username')}:{entry.pop('password', '')}"
                entry["auth"] = base64.b64encode(pair.encode()).decode()
    except (ValueError, KeyError, TypeError, AttributeError):
        # Never the value itself: it holds passwords.
        raise RenderError("the Helm registry credentials setting is not Docker's config.json "
                          '({"auths": {"host": {"username": ..., "password": ...}}})') from None
    return json.dumps(config).encode()


def _restore(charts: Path, built: dict[str, bytes]) -> None:
    charts.mkdir(exist_ok=True)
    for entry in charts.iterdir():
        if entry.is_file() or entry.is_symlink():
            entry.unlink()
    for name, data in built.items():
        (charts / name).write_bytes(data)


def _cache_key(src: Path, local: list[Path], tools: RenderTools) -> str:
    digest = hashlib.sha256(str(tools.helm).encode())
    digest.update(json.dumps(sorted(tools.helm_plain_http)).encode())
    for path in [src / "Chart.yaml", src / "Chart.lock"]:
        digest.update(path.read_bytes() if path.is_file() else b"-")
    for folder in [src / "charts"] + local:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                digest.update(str(path.relative_to(folder)).encode() + b"\0")
                digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _describe(dep: dict) -> str:
    version = f" {dep['version']}" if dep.get("version") else ""
    where = re.sub(r"//[^/@\s]+@", "//", dep["repository"])  # no password from the URL
    return f"{dep['name']}{version} ({where})" if where else f"{dep['name']}{version}"


class _BuiltCharts:
    """charts/ contents per cache key, least recently used out beyond `max_bytes`."""

    def __init__(self, max_bytes: int = 64 << 20):
        self.max_bytes, self.items, self.lock = max_bytes, OrderedDict(), Lock()

    def get(self, key: str) -> dict[str, bytes] | None:
        with self.lock:
            item = self.items.get(key)
            if item is None or item[1] is not None and item[1] < time.monotonic():
                return None
            self.items.move_to_end(key)
            return item[0]

    def put(self, key: str, files: dict[str, bytes], ttl: float | None) -> None:
        with self.lock:
            self.items[key] = (files, None if ttl is None else time.monotonic() + ttl)
            total = sum(len(d) for files, _ in self.items.values() for d in files.values())
            while total > self.max_bytes and len(self.items) > 1:
                old, _ = self.items.popitem(last=False)
                total -= sum(len(d) for d in old.values())

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


_built = _BuiltCharts()


def forget() -> None:
    """Drop the dependencies built (a hard refresh: fetch them again)."""
    _built.clear()
