"""Manifests from a checked-out source: a plain directory, a Kustomize overlay, a Helm chart or a
Jsonnet directory.

`render(root, spec, tools)` returns the Kubernetes objects (dicts) in the order the files or the
tool produced them. Every failure is a RenderError whose path is relative to the repository
root, so the message means something to the user who owns the repository.
"""
from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import RenderError
from ..resources import hook_types
from .jsonnet_imports import ImportGuard

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
JSONNET_SUFFIXES = (".jsonnet", ".libsonnet")  # only .jsonnet files are evaluated


@dataclass
class HelmSpec:
    release_name: str = ""  # empty: the chart folder's name
    namespace: str | None = None  # overrides render()'s namespace for `helm template`
    values_files: list[str] = field(default_factory=list)  # relative to the chart folder
    values: str = ""  # inline YAML, above the values files
    parameters: dict[str, str] = field(default_factory=dict)  # --set name=value, above all
    string_parameters: dict[str, str] = field(default_factory=dict)  # --set-string (forceString)


@dataclass
class KustomizeSpec:
    """Overrides applied on top of the kustomization without changing the checkout."""
    name_prefix: str = ""
    name_suffix: str = ""
    namespace: str = ""
    images: list[str] = field(default_factory=list)  # "name=new:tag", "name:tag", "name@digest"

    def any(self) -> bool:
        return bool(self.name_prefix or self.name_suffix or self.namespace or self.images)


@dataclass(frozen=True)
class JsonnetVar:
    """A top-level argument or external variable: a string, or Jsonnet code when `code`."""
    name: str
    value: str
    code: bool = False


@dataclass
class JsonnetSpec:
    """Argo CD's directory.jsonnet."""
    tlas: list[JsonnetVar] = field(default_factory=list)
    ext_vars: list[JsonnetVar] = field(default_factory=list)
    libs: list[str] = field(default_factory=list)  # library folders, relative to the repo root


@dataclass
class SourceSpec:
    path: str = "."
    tool: str | None = None  # None: detected; else "directory", "kustomize", "helm" or "jsonnet"
    include: str | None = None  # glob on the path relative to `path`; "{a,b}" for several
    exclude: str | None = None
    recurse: bool = True
    helm: HelmSpec = field(default_factory=HelmSpec)
    kustomize: KustomizeSpec = field(default_factory=KustomizeSpec)
    jsonnet: JsonnetSpec = field(default_factory=JsonnetSpec)


@dataclass
class RenderTools:
    kustomize: str | Path = "kustomize"
    helm: str | Path = "helm"
    jsonnet: str | Path = "jsonnet"
    timeout: float = 60
    # Helm dependencies from OCI registries (helm_deps.py): credentials as Docker's config.json
    # text, and the registries (host:port) reached over plain HTTP. Read from the environment
    # unless given: GITOPS_UI_HELM_REGISTRY_CONFIG, GITOPS_UI_HELM_PLAIN_HTTP (comma-separated).
    helm_registry_config: str = field(
        default_factory=lambda: os.environ.get("GITOPS_UI_HELM_REGISTRY_CONFIG", ""), repr=False)
    helm_plain_http: tuple[str, ...] = field(default_factory=lambda: tuple(
        h.strip() for h in os.environ.get("GITOPS_UI_HELM_PLAIN_HTTP", "").split(",") if h.strip()))


def render(root: Path, spec: SourceSpec, tools: RenderTools,
           namespace: str | None = None) -> list[dict]:
    """The objects `spec` describes in the checkout at `root`.

    `namespace` is the application's destination namespace: Helm templates see it as
    .Release.Namespace; directory and Kustomize objects are returned as written.
    """
    root = Path(root).resolve()
    src = _inside(root, spec.path, "source path")
    if not src.is_dir():
        raise RenderError("source path does not exist or is not a folder", _rel(root, src))
    _check_symlinks(root, src)
    tool = spec.tool or detect_tool(src)
    if tool == "directory":
        return _directory(root, src, spec)
    if tool == "jsonnet":
        return _directory(root, src, spec, jsonnet=_JsonnetRun(root, src, spec.jsonnet, tools))
    if tool == "kustomize":
        return _kustomize(root, src, spec.kustomize, tools)
    if tool == "helm":
        return _helm(root, src, spec.helm, tools, spec.helm.namespace or namespace)
    raise RenderError(f"unknown source tool {tool!r}", spec.path)


def detect_tool(src: Path) -> str:
    if any((src / name).is_file() for name in KUSTOMIZATION_FILES):
        return "kustomize"
    if (src / "Chart.yaml").is_file():
        return "helm"
    for _, _, filenames in os.walk(src):
        if any(name.endswith(JSONNET_SUFFIXES) for name in filenames):
            return "jsonnet"  # YAML and JSON next to it are rendered too, as Argo CD does
    return "directory"


def export_paths(spec: SourceSpec) -> list[str]:
    """The repository folders a render of `spec` reads besides what their files refer to: the
    source path, the folders of its Helm values files and its Jsonnet library paths (for
    RepoCache.checkout's `paths`)."""
    paths = [spec.path or "."]
    paths += [os.path.dirname(os.path.normpath(os.path.join(spec.path or ".", name))) or "."
              for name in spec.helm.values_files]
    return paths + list(spec.jsonnet.libs)


# --- directory --------------------------------------------------------------------------------
def _directory(root: Path, src: Path, spec: SourceSpec,
               jsonnet: "_JsonnetRun | None" = None) -> list[dict]:
    include, exclude = _patterns(spec.include), _patterns(spec.exclude)
    suffixes = MANIFEST_SUFFIXES + ((".jsonnet",) if jsonnet else ())
    files = []
    for dirpath, dirnames, filenames in os.walk(src):
        if not spec.recurse:
            dirnames.clear()
        for name in filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(src).as_posix()
            if not name.endswith(suffixes):
                continue
            if include and not _matches(rel, include) or exclude and _matches(rel, exclude):
                continue
            files.append(path)
    objects = []
    # Lexical order of the path parts ("a/z.yaml" before "b.yaml"): stable whatever the disk.
    for path in sorted(files, key=lambda p: p.relative_to(src).parts):
        if jsonnet and path.suffix == ".jsonnet":
            objects += jsonnet.evaluate(path)
            continue
        try:
            data = path.read_bytes()
        except OSError as exc:  # a dangling symlink, say
            raise RenderError(f"cannot read: {exc.strerror}", _rel(root, path)) from None
        objects += parse_manifests(data, _rel(root, path), json_file=path.suffix == ".json")
    return objects


def _patterns(value: str | None) -> list[str]:
    """Glob patterns of an include/exclude setting: "{a,b}" is two patterns, "" none."""
    if not value:
        return []
    match = re.fullmatch(r"(.*?)\{([^{}]*)\}(.*)", value)
    if not match:
        return [value]
    head, alts, tail = match.groups()
    return [p for alt in alts.split(",") for p in _patterns(head + alt + tail)]


def _matches(rel: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(rel, p) for p in patterns)


# --- parsing ----------------------------------------------------------------------------------
class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """Safe YAML that leaves timestamps as strings, as Kubernetes' own YAML to JSON does."""


_Loader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def parse_manifests(data: bytes, where: str, json_file: bool = False) -> list[dict]:
    """Objects of one file (or tool output), checked; `where` names it in errors."""
    text = data.decode("utf-8-sig", errors="replace")
    if json_file:
        try:
            docs = [(json.loads(text), 1)] if text.strip() else []
        except json.JSONDecodeError as exc:
            raise RenderError(f"invalid JSON: {exc.msg}", where, exc.lineno) from None
    else:
        docs = _yaml_documents(text, where)
    return _objects(docs, where)


def _objects(docs: list[tuple[object, int | None]], where: str) -> list[dict]:
    objects = []
    for index, (doc, line) in enumerate(docs, 1):
        if doc is None:
            continue
        if isinstance(doc, dict) and doc.get("kind") == "List" and "items" in doc:
            items = doc["items"] or []
            if not isinstance(items, list):
                raise RenderError(f"document {index}: List items is not a list", where, line)
            for n, item in enumerate(items):
                objects.append(_checked(item, f"document {index}, item {n}", where, line))
        else:
            objects.append(_checked(doc, f"document {index}", where, line))
    return objects


def _yaml_documents(text: str, where: str) -> list[tuple[object, int]]:
    """(document, 1-based line where it starts) for each YAML document of `text`."""
    loader = _Loader(text)
    docs = []
    try:
        while loader.check_node():
            node = loader.get_node()
            docs.append((loader.construct_document(node), node.start_mark.line + 1))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RenderError(f"invalid YAML: {problem}", where,
                          mark.line + 1 if mark else None) from None
    finally:
        loader.dispose()
    return docs


def _checked(obj, what: str, where: str, line: int) -> dict:
    if not isinstance(obj, dict):
        raise RenderError(f"{what}: not a Kubernetes object (a {type(obj).__name__})", where, line)
    for key in ("apiVersion", "kind"):
        if not obj.get(key) or not isinstance(obj[key], str):
            raise RenderError(f"{what}: object has no {key}", where, line)
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    name, generate_name = metadata.get("name"), metadata.get("generateName")
    if name and isinstance(name, str):
        return obj
    # A hook may leave its name to the API server, run after run (Argo CD's examples do).
    if generate_name and isinstance(generate_name, str) and not name:
        if hook_types(obj):
            return obj
        raise RenderError(f"{what}: metadata.generateName without metadata.name is only "
                          "supported on hooks (argocd.argoproj.io/hook)", where, line)
    raise RenderError(f"{what}: object has no metadata.name", where, line)


# --- tools ------------------------------------------------------------------------------------
def _kustomize(root: Path, src: Path, overrides: KustomizeSpec, tools: RenderTools) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="gitops-kustomize-") as tmp:
        target = src
        if overrides.any():
            # The checkout is shared and read-only: wrap it in a kustomization of our own
            # instead of `kustomize edit`-ing it.
            wrapper = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                       "resources": [os.path.relpath(src, Path(tmp) / "wrapper")]}
            if overrides.name_prefix:
                wrapper["namePrefix"] = overrides.name_prefix
            if overrides.name_suffix:
                wrapper["nameSuffix"] = overrides.name_suffix
            if overrides.namespace:
                wrapper["namespace"] = overrides.namespace
            if overrides.images:
                wrapper["images"] = [_image(i) for i in overrides.images]
            target = Path(tmp) / "wrapper"
            target.mkdir()
            (target / "kustomization.yaml").write_text(yaml.safe_dump(wrapper))
        out = _tool([str(tools.kustomize), "build", str(target)], root, src, tools.timeout,
                    "kustomize build", env={"HOME": tmp})
    return parse_manifests(out, f"{_rel(root, src)} (kustomize build output)")


def _image(override: str) -> dict:
    """Kustomize `images:` entry for "name=new[:tag][@digest]" or "name[:tag][@digest]"."""
    name, eq, new = override.partition("=")
    repo, tag, digest = _split_image(new if eq else override)
    entry = {"name": name if eq else repo}
    if eq and repo:
        entry["newName"] = repo
    if tag:
        entry["newTag"] = tag
    if digest:
        entry["digest"] = digest
    return entry


def _split_image(ref: str) -> tuple[str, str, str]:
    image, _, digest = ref.partition("@")
    repo, colon, tag = image.rpartition(":")
    if not colon or "/" in tag:  # "host:5000/app" has a port, not a tag
        repo, tag = image, ""
    return repo, tag, digest


def _helm(root: Path, src: Path, spec: HelmSpec, tools: RenderTools,
          namespace: str | None) -> list[dict]:
    from .helm_deps import chart_to_template  # imports this module's helpers
    release = spec.release_name or src.name
    with tempfile.TemporaryDirectory(prefix="gitops-helm-") as tmp:
        # A copy with its dependencies built when charts/ lacks some; else `src` itself.
        chart, tree = chart_to_template(root, src, tools, Path(tmp))
        argv = [str(tools.helm), "template", release, str(chart), "--include-crds"]
        if namespace:
            argv += ["--namespace", namespace]
        for name in spec.values_files:
            values = _inside(root, os.path.join(_rel(root, src), name), "values file")
            if not values.is_file():
                raise RenderError(f"values file {name!r} not found", _rel(root, src))
            argv += ["--values", str(values)]
        if spec.values.strip():
            inline = Path(tmp) / "inline-values.yaml"
            inline.write_text(spec.values)
            argv += ["--values", str(inline)]
        for flag, parameters in (("--set", spec.parameters),
                                 ("--set-string", spec.string_parameters)):
            for name, value in parameters.items():
                # --set splits on unescaped commas: a value holding one is still one value.
                escaped = re.sub(r"(?<!\\),", r"\\,", str(value))
                argv += [flag, f"{name}={escaped}"]
        # Helm keeps its cache and repository config in these: a private, empty set per call.
        env = {f"HELM_{k}_HOME": os.path.join(tmp, k.lower()) for k in ("CACHE", "CONFIG", "DATA")}
        out = _tool(argv, tree, chart, tools.timeout, "helm template", env={**env, "HOME": tmp})
    return parse_manifests(out, f"{_rel(root, src)} (helm template output)")


class _JsonnetRun:
    """Evaluates the .jsonnet files of one render with go-jsonnet, as Argo CD's directory source
    does: library paths are the source folder and `libs`, each file gets the same top-level
    arguments and external variables, and its output is an object or a list of objects."""

    def __init__(self, root: Path, src: Path, spec: JsonnetSpec, tools: RenderTools):
        self.root, self.src, self.tools = root, src, tools
        library_paths = [src] + [_inside(root, lib, "jsonnet library path") for lib in spec.libs]
        for lib, path in zip(spec.libs, library_paths[1:]):
            if not path.is_dir():
                raise RenderError("jsonnet library path does not exist or is not a folder", lib)
        self.options = []
        for path in library_paths:
            self.options += ["--jpath", str(path)]
        self.guard = ImportGuard(root, library_paths)
        rel = lambda path: _rel(root, path)  # noqa: E731
        for flag, variables in (("ext", spec.ext_vars), ("tla", spec.tlas)):
            for var in variables:
                if var.code:
                    self.guard.check_code(var.value, src, f"{flag} code {var.name!r}", rel)
                # Always name=value: a bare name would make jsonnet read the variable from our
                # own environment.
                kind = "code" if var.code else "str"
                self.options += [f"--{flag}-{kind}", f"{var.name}={var.value}"]

    def evaluate(self, path: Path) -> list[dict]:
        where = _rel(self.root, path)
        self.guard.check_file(path, lambda p: _rel(self.root, p))
        argv = [str(self.tools.jsonnet), *self.options, "--", str(path)]
        # JSONNET_PATH would add library paths of the server's environment.
        out = _tool(argv, self.root, self.src, self.tools.timeout, "jsonnet",
                    env={"JSONNET_PATH": ""})
        try:
            data = json.loads(out)
        except json.JSONDecodeError as exc:
            raise RenderError(f"jsonnet output is not JSON: {exc.msg}", where) from None
        return _objects([(doc, None) for doc in (data if isinstance(data, list) else [data])],
                        f"{where} (jsonnet output)")


def _tool(argv: list[str], root: Path, src: Path, timeout: float, what: str,
          env: dict, pass_fds: tuple[int, ...] = ()) -> bytes:
    """stdout of a renderer; its stderr, with checkout paths made repo-relative, on failure."""
    # Registry credentials are for helm_deps to hand over in memory, not for every child to see.
    full_env = {k: v for k, v in os.environ.items() if k != "GITOPS_UI_HELM_REGISTRY_CONFIG"}
    full_env.update(env)
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=timeout, cwd=src, env=full_env,
                              stdin=subprocess.DEVNULL, pass_fds=pass_fds)
    except subprocess.TimeoutExpired:
        raise RenderError(f"{what} timed out after {timeout:g} s", _rel(root, src)) from None
    except OSError as exc:
        raise RenderError(f"cannot run {what}: {exc.strerror}", _rel(root, src)) from None
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip() or f"exit code {proc.returncode}"
        message = message.replace(f"{root}/", "").replace(str(root), ".")
        message = re.sub(r"^Error: ", "", message)
        message = re.sub(r"\s*Use --debug flag to render out invalid YAML$", "", message)
        raise RenderError(f"{what} failed: {message}", _rel(root, src))
    return proc.stdout


# --- paths ------------------------------------------------------------------------------------
def _inside(root: Path, rel: str, what: str) -> Path:
    """`rel` under `root`, symlinks resolved; RenderError if it leads out of the repository."""
    if os.path.isabs(rel):
        raise RenderError(f"{what} must be relative to the repository root", rel)
    path = (root / rel).resolve()
    if path != root and root not in path.parents:
        raise RenderError(f"{what} leads outside the repository", rel)
    return path


def _check_symlinks(root: Path, src: Path) -> None:
    """No symlink under `src` may point outside the repository (the tools would follow it)."""
    for dirpath, dirnames, filenames in os.walk(src):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink():
                target = path.resolve()
                if target != root and root not in target.parents:
                    raise RenderError("symlink points outside the repository", _rel(root, path))


def _rel(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix() or "."
    except ValueError:
        return str(path)
