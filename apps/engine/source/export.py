"""Exports of part of a commit: the folders one application's render reads, nothing else.

Rendering an application needs its own folder plus what that folder refers to: a Kustomize base
in `../base`, a Helm dependency at `file://../lib`, a Jsonnet `import "../lib/x.libsonnet"`, a
symlink to a shared file. `closure()` finds those folders by reading the commit's objects (never
a checkout): it starts from the folders asked for and adds, for each, every folder its
kustomization files, Chart.yaml / requirements.yaml, Jsonnet files and symlinks point to with a
`..`, until nothing new appears. Whenever it cannot be sure (a file it cannot parse, a reference
that leaves the repository, a symlink to a folder, the root itself asked for) it answers None:
the caller then exports the whole commit, as before, so the render sees exactly what it would
have seen and fails, if it must, with the same message.

An export is named after the folders it holds and their git tree ids: a commit that did not
change an application's folders reuses its export as is (no git call at all), so a push costs
an export of the changed applications' files only.
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Iterable

import yaml

from .jsonnet_imports import Unreadable, imports

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
CHART_FILES = ("Chart.yaml", "requirements.yaml")
JSONNET_SUFFIXES = (".jsonnet", ".libsonnet")
SYMLINK_MODE = "120000"


class _Unsure(Exception):
    """The scan cannot tell what a folder reads: export the whole commit."""


class References:
    """What one folder's files point to: repository paths (folders or files), Jsonnet imports
    with `..` that may also resolve from a library path (-J), kept as written, and symlink
    targets (also in `paths`)."""

    def __init__(self, paths: Iterable[str] = (), jsonnet: Iterable[str] = (),
                 links: Iterable[str] = ()):
        self.paths, self.jsonnet = frozenset(paths), frozenset(jsonnet)
        self.links = frozenset(links)


class ScanMemo:
    """References per (repository, folder, tree id): a folder's content never changes."""

    def __init__(self, size: int = 4096):
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, key):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        return False

    def put(self, key, value) -> None:
        with self.lock:
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)


def normalised(path: str) -> str | None:
    """`path` as a repository-relative folder path ("" is the root); None if it leaves it."""
    if not isinstance(path, str) or path.startswith("/"):
        return None
    clean = posixpath.normpath(path or ".")
    if clean == ".":
        return ""
    if clean == ".." or clean.startswith("../"):
        return None
    return clean


def closure(start: Iterable[str], folders: dict[str, str],
            scan: Callable[[str, str], References | None]) -> list[str] | None:
    """The folders to export for a render that reads `start` (repository-relative folders), or
    None for the whole commit. `folders` maps every folder of the commit to its tree id;
    `scan(folder, tree)` gives a folder's References (None: unsure)."""
    roots = []
    for path in start:
        folder = normalised(path)
        if not folder or folder not in folders:
            # The root, a path out of the repository, a symlink or nothing at all: the render
            # decides what that means, on the whole commit.
            return None
        roots.append(folder)
    seen: set[str] = set()
    todo = list(roots)
    jsonnet_imports: set[tuple[str, str]] = set()
    while todo:
        folder = todo.pop()
        if folder in seen:
            continue
        seen.add(folder)
        refs = scan(folder, folders[folder])
        if refs is None:
            return None
        if any(link in folders for link in refs.links):
            # `link/../x` means another folder once the link is followed: not worth guessing.
            return None
        for path in refs.paths:
            found = _nearest_folder(path, folders)
            if not found:
                return None
            todo.append(found)
        # go-jsonnet tries an import from the importing file's folder (in refs.paths) and from
        # each library path: the folders asked for.
        for target in refs.jsonnet:
            for base in roots:
                if (base, target) not in jsonnet_imports:
                    jsonnet_imports.add((base, target))
                    path = normalised(posixpath.join(base, target))
                    found = _nearest_folder(path, folders) if path is not None else None
                    if not found:
                        return None
                    todo.append(found)
    return _outermost(seen)


def export_name(folders: list[str], ids: dict[str, str]) -> str:
    """A folder name for the export of `folders`: the same content, the same name."""
    digest = hashlib.sha256(b"sparse-export-v1\0")
    for folder in folders:
        digest.update(f"{folder}\0{ids[folder]}\0".encode())
    return "p-" + digest.hexdigest()[:40]


def scan_files(folder: str, entries: list[tuple[str, str, str]],
               read: Callable[[list[str]], dict[str, bytes]]) -> References | None:
    """References of the files of `folder`: `entries` are (mode, object id, path relative to
    the folder) of every file in it; `read(ids)` returns the blobs of the ids asked for."""
    wanted = [(mode, oid, path) for mode, oid, path in entries
              if mode == SYMLINK_MODE or posixpath.basename(path) in KUSTOMIZATION_FILES
              or posixpath.basename(path) in CHART_FILES or path.endswith(JSONNET_SUFFIXES)]
    if not wanted:
        return References()
    blobs = read(sorted({oid for _, oid, _ in wanted}))
    paths, jsonnet, links = set(), set(), set()
    try:
        for mode, oid, rel in wanted:
            where = posixpath.join(folder, rel)
            here = posixpath.dirname(where)
            data = blobs[oid]
            name = posixpath.basename(rel)
            if mode == SYMLINK_MODE:
                target = data.decode(errors="replace")
                if target.startswith("/"):
                    _unsure()
                links.add(_inside(posixpath.join(here, target)))
            elif name in KUSTOMIZATION_FILES:
                paths.update(_kustomization_refs(data, here))
            elif name in CHART_FILES:
                paths.update(_chart_refs(data, here))
            else:
                for _, target, _ in imports(data.decode("utf-8", errors="replace")):
                    if target.startswith("/") or ".." not in target.split("/"):
                        continue  # absolute: refused by the render; no `..`: stays inside
                    paths.add(_inside(posixpath.join(here, target)))
                    jsonnet.add(target)
    except (_Unsure, Unreadable, yaml.YAMLError, UnicodeDecodeError, KeyError):
        return None
    return References(paths | links, jsonnet, links)


def _kustomization_refs(data: bytes, here: str) -> set[str]:
    doc = yaml.safe_load(data)
    found = set()
    for value in _strings(doc):
        for candidate in (value, value.rpartition("=")[2]):  # "key=path" in generators
            if "://" in candidate or candidate.startswith("/"):
                continue
            if ".." in candidate.split("/"):
                found.add(_inside(posixpath.join(here, candidate)))
    return found


def _chart_refs(data: bytes, here: str) -> set[str]:
    doc = yaml.safe_load(data)
    found = set()
    dependencies = doc.get("dependencies") if isinstance(doc, dict) else None
    for dep in dependencies if isinstance(dependencies, list) else []:
        repository = dep.get("repository") if isinstance(dep, dict) else None
        if isinstance(repository, str) and repository.startswith("file://"):
            target = repository[len("file://"):]
            if target.startswith("/"):
                _unsure()
            found.add(_inside(posixpath.join(here, target)))
    return found


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _inside(path: str) -> str:
    clean = normalised(path)
    if clean is None:
        _unsure()
    return clean


def _unsure():
    raise _Unsure()


def _nearest_folder(path: str, folders: dict[str, str]) -> str | None:
    """The folder holding `path` (itself if a folder); None when that is the root."""
    while path and path not in folders:
        path = posixpath.dirname(path)
    return path or None


def _outermost(folders: set[str]) -> list[str]:
    """`folders` without those inside another one of them, sorted."""
    kept = []
    for folder in sorted(folders):
        if not any(folder.startswith(k + "/") for k in kept):
            kept.append(folder)
    return kept


# --- export folders -----------------------------------------------------------------------
def make_read_only(top: Path) -> None:
    # Renderers share one export per commit; read-only so none can change it for the others.
    for dirpath, dirnames, filenames in os.walk(top):
        for name in filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.chmod(p, os.stat(p).st_mode & 0o555)
    for dirpath, dirnames, _ in os.walk(top, topdown=False):
        for name in dirnames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.chmod(p, 0o555)
    os.chmod(top, 0o555)


def touch(path: Path) -> None:
    try:
        os.utime(path)  # the export's mtime says when it was last used
    except OSError:
        pass


def prune(folder: Path, keep: int, current: Path, grace: float) -> None:
    """Keep the `keep` most recently used exports of a repository (a push makes one per changed
    application), plus any used in the last few minutes (a render may be reading it); drop
    leftovers of crashes."""
    now = time.time()
    exports = []
    for entry in folder.iterdir():
        try:
            mtime = entry.stat().st_mtime
        except FileNotFoundError:  # a partial export renamed into place meanwhile (no lock)
            continue
        if entry.name.startswith("."):
            if now - mtime > 3600:
                remove(entry)
        elif entry != current:
            exports.append((mtime, entry))
    exports.sort(reverse=True)
    for mtime, entry in exports[max(keep - 1, 0):]:
        if now - mtime > grace:
            remove(entry)


def remove(top: Path) -> None:
    for dirpath, dirnames, _ in os.walk(top):
        for name in dirnames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.chmod(p, 0o755)
    if top.exists():
        top.chmod(0o755)
    shutil.rmtree(top, ignore_errors=True)
