"""The source side of the engine (what Argo CD's repo-server does): Git revisions and clone
caches (git.py), and manifests rendered from a checkout (render.py)."""
from .git import GitCredentials, RepoCache
from .render import HelmSpec, KustomizeSpec, RenderTools, SourceSpec, detect_tool, render

__all__ = ["GitCredentials", "RepoCache", "HelmSpec", "KustomizeSpec", "RenderTools",
           "SourceSpec", "detect_tool", "render"]
