"""Image write-back: the edit that points an application's folder at a new image tag.

Three kinds of folder, as Argo CD Image Updater knows them: a kustomization's `images:` list
(name / newName / newTag / digest, as `kustomize edit set image` writes them), a Helm values key
path given by the application (`image.tag`, with `image.repository` and a digest key if
wanted), or the `image:` of the containers and initContainers of plain manifests.

Files are edited in place, not re-dumped (yaml_edit.py): comments, key order, quoting and blank
lines of the rest of the file stay byte for byte. Pure functions on the files' bytes; the caller
commits (git_commit.py).
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Mapping

from yaml.nodes import MappingNode, Node, SequenceNode

from .yaml_edit import Doc, KeyPathNotFound, MalformedFile, get, line_of, scalar
from .yaml_edit import WriteBackError as ImageUpdateError

__all__ = ["HelmTarget", "Image", "ImageNotUsed", "ImageUpdateError", "InvalidImage",
           "KeyPathNotFound", "MalformedFile", "update_files", "update_helm_values",
           "update_kustomization", "update_manifests"]

KUSTOMIZATIONS = ("kustomization.yaml", "kustomization.yml", "Kustomization")
YAML_SUFFIXES = (".yaml", ".yml")
CONTAINER_LISTS = ("containers", "initContainers")
# Docker's reference grammar (distribution/reference), without the tag and digest.
NAME = re.compile(r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
                  r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
TAG = re.compile(r"^[\w][\w.-]{0,127}$", re.ASCII)
DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$")
KEY_PATH = re.compile(r"^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$")


class InvalidImage(ImageUpdateError):
    pass


class ImageNotUsed(ImageUpdateError):
    pass


@dataclass(frozen=True)
class Image:
    """The image to deploy: repository without tag (`registry:5000/team/web`), new tag, and
    optionally its digest (`sha256:…`)."""

    repository: str
    tag: str
    digest: str = ""

    def __post_init__(self):
        # Checked strictly: these strings are written into YAML files.
        if not NAME.match(self.repository or ""):
            raise InvalidImage(f"not an image repository without tag: {self.repository!r}")
        if not TAG.match(self.tag or ""):
            raise InvalidImage(f"not an image tag: {self.tag!r}")
        if self.digest and not DIGEST.match(self.digest):
            raise InvalidImage(f"not an image digest (algorithm:hex): {self.digest!r}")

    def reference(self, name: str | None = None) -> str:
        ref = f"{name or self.repository}:{self.tag}"
        return f"{ref}@{self.digest}" if self.digest else ref


@dataclass(frozen=True)
class HelmTarget:
    """Where a chart's values take the image: key paths in `values_file` (dot-separated)."""

    values_file: str = "values.yaml"
    tag_key: str = "image.tag"
    repository_key: str = ""
    digest_key: str = ""

    def __post_init__(self):
        for key in (self.tag_key, self.repository_key, self.digest_key):
            if key and not KEY_PATH.match(key):
                raise ImageUpdateError(f"not a values key path: {key!r} (e.g. image.tag)")
        if not self.tag_key:
            raise ImageUpdateError("a Helm write-back needs the key path of the tag")


def update_files(files: Mapping[str, bytes], image: Image,
                 helm: HelmTarget | None = None) -> dict[str, bytes]:
    """The files of the application's folder (path relative to it -> content) that change to
    deploy `image`: {} when they already do. A Helm target edits its values file; else a
    kustomization's `images:`; else the plain manifests' container images."""
    if helm is not None:
        path = posixpath.normpath(helm.values_file)
        if path not in files:
            raise KeyPathNotFound(f"{helm.values_file}: no such values file in the folder")
        return _changed(files, {path: update_helm_values(_text(files, path), image, helm, path)})
    if "Chart.yaml" in files:
        raise ImageUpdateError("the folder is a Helm chart: name the values key path of the "
                               "image tag (e.g. image.tag)")
    kustomization = next((name for name in KUSTOMIZATIONS if name in files), None)
    if kustomization:
        text = _text(files, kustomization)
        return _changed(files, {kustomization: update_kustomization(
            text, image, _resource_texts(files, text, kustomization), kustomization)})
    edits, used = {}, False
    for path in sorted(files):
        if path.endswith(YAML_SUFFIXES):
            new, found = update_manifests(_text(files, path), image, path)
            used, edits[path] = used or found, new
    if not used:
        raise ImageNotUsed(f"no container of the folder's manifests uses {image.repository}")
    return _changed(files, edits)


# --- the three edits ------------------------------------------------------------------------
def update_kustomization(text: str, image: Image, resources: Mapping[str, str] | None = None,
                         path: str = "kustomization.yaml") -> str:
    """Set newTag (and digest, or drop a stale one) on the `images:` entries naming the image
    (by `name` or `newName`); with none, add one if a resource uses the image."""
    doc = Doc(text, path)
    root = doc.root()
    images = get(root, "images")
    entries = []
    if images is not None:
        if not isinstance(images, SequenceNode):
            raise MalformedFile(f"{path}: images: is not a list")
        for entry in images.value:
            if not isinstance(entry, MappingNode):
                raise MalformedFile(f"{path}:{line_of(entry)}: an images: entry is not a mapping")
            target = scalar(get(entry, "newName")) or scalar(get(entry, "name"))
            if same_image(target, image.repository):
                entries.append(entry)
    for entry in entries:
        doc.set_key(entry, "newTag", image.tag)
        if image.digest:
            doc.set_key(entry, "digest", image.digest)
        else:
            doc.delete_key(entry, "digest")  # else kustomize keeps deploying the old digest
    if not entries:
        written = _written_names(resources or {}, image)
        if not written:
            raise ImageNotUsed(f"{path}: no images: entry for {image.repository}, and no "
                               "resource of the kustomization uses it")
        if images is not None and any(scalar(get(e, "name")) == written for e in images.value):
            raise ImageUpdateError(f"{path}: the images: entry for {written} renames it to "
                                   "another image; not changed")
        fields = [("name", written)]
        if written != image.repository:
            fields.append(("newName", image.repository))
        fields.append(("newTag", image.tag))
        if image.digest:
            fields.append(("digest", image.digest))
        doc.append_entry(root, images, "images", fields)
    return doc.result()


def update_helm_values(text: str, image: Image, target: HelmTarget,
                       path: str = "values.yaml") -> str:
    doc = Doc(text, path)
    root = doc.root()
    doc.set_path(root, target.tag_key, image.tag)
    if target.repository_key:
        doc.set_path(root, target.repository_key, image.repository)
    if target.digest_key:
        doc.set_path(root, target.digest_key, image.digest)
    return doc.result()


def update_manifests(text: str, image: Image, path: str = "manifest.yaml") -> tuple[str, bool]:
    """(new text, whether any container uses the image) for the `image:` of the containers
    and initContainers of every Kubernetes object in the file."""
    doc = Doc(text, path)
    used = False
    for root in doc.roots():
        if isinstance(root, MappingNode) and get(root, "kind") is not None:
            for container in _containers(root):
                node = get(container, "image")
                name = image_name(scalar(node))
                if name and same_image(name, image.repository):
                    used = True
                    doc.replace(node, image.reference(name))
    return doc.result(), used


# --- reading ----------------------------------------------------------------------------------
def _text(files: Mapping[str, bytes], path: str) -> str:
    try:
        return files[path].decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedFile(f"{path}: not UTF-8 text") from None


def _changed(files: Mapping[str, bytes], edits: Mapping[str, str]) -> dict[str, bytes]:
    out = {path: text.encode("utf-8") for path, text in edits.items()}
    return {path: data for path, data in out.items() if data != files[path]}


def _resource_texts(files: Mapping[str, bytes], text: str, path: str) -> dict[str, str]:
    """The files the kustomization's `resources:` names in the folder (files, or folders'
    YAML files); remote resources are not read."""
    listed = get(Doc(text, path).root(), "resources")
    names = [scalar(n) for n in listed.value] if isinstance(listed, SequenceNode) else []
    found = {}
    for name in filter(None, names):
        if "://" in name or name.startswith(("github.com/", "git@")):
            continue
        clean = posixpath.normpath(name)
        for candidate in files:
            if candidate == clean or (candidate.startswith(clean + "/")
                                      and candidate.endswith(YAML_SUFFIXES)
                                      and posixpath.basename(candidate) not in KUSTOMIZATIONS):
                found[candidate] = _text(files, candidate)
    return found


def _written_names(resources: Mapping[str, str], image: Image) -> str | None:
    """The image name as the resources write it (what a kustomize `name:` must match)."""
    for path, text in sorted(resources.items()):
        for root in Doc(text, path).roots():
            if isinstance(root, MappingNode):
                for container in _containers(root):
                    name = image_name(scalar(get(container, "image")))
                    if name and same_image(name, image.repository):
                        return name
    return None


def _containers(node: Node):
    """Every mapping in a `containers` / `initContainers` list under `node`."""
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if scalar(key) in CONTAINER_LISTS and isinstance(value, SequenceNode):
                yield from (c for c in value.value if isinstance(c, MappingNode))
            else:
                yield from _containers(value)
    elif isinstance(node, SequenceNode):
        for item in node.value:
            yield from _containers(item)


def image_name(ref: str | None) -> str | None:
    if not ref:
        return None
    name = ref.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def same_image(a: str | None, b: str) -> bool:
    return bool(a) and _canonical(a) == _canonical(b)


def _canonical(name: str) -> str:
    # Docker Hub's short forms: nginx = docker.io/library/nginx.
    for prefix in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    return name[len("library/"):] if name.startswith("library/") else name



