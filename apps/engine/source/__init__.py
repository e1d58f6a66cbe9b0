"""The source side of the engine (what Argo CD's repo-server does): Git revisions and clone
caches (git.py), and manifests rendered from a checkout (render.py; Jsonnet imports are kept
inside the repository by jsonnet_imports.py)."""
from .git import GitCredentials, RepoCache
from .render import (HelmSpec, JsonnetSpec, JsonnetVar, KustomizeSpec, RenderTools, SourceSpec,
                     detect_tool, export_paths, render)

__all__ = ["GitCredentials", "RepoCache", "HelmSpec", "JsonnetSpec", "JsonnetVar",
           "KustomizeSpec", "RenderTools", "SourceSpec", "detect_tool", "export_paths", "render"]
