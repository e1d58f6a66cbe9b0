"""The local stack: every real system GitOps UI talks to, started on loopback for tests.

Used by the pytest fixtures in tests/conftest.py (session scope, each component started the first
time a test asks for it) and by developers through `make stack` (python -m tests.localstack).

Each component is a class with `start()`, `stop()`, `info()` (how to reach it, JSON-friendly) and
`logs()` (the files its programs write, shown when a test fails).
"""
from __future__ import annotations

import importlib
import shutil
import tempfile
from pathlib import Path

from .process import StackError

__all__ = ["LocalStack", "Component", "StackError", "COMPONENTS"]

# name -> "module:Class"; imported on first use so one broken part does not block the others.
COMPONENTS = {
    "postgres": "tests.localstack.postgres:Postgres",
    "redis": "tests.localstack.redis:Redis",
    "registry": "tests.localstack.registry:Registry",
    "git": "tests.localstack.gitserver:GitServer",
    "sshd": "tests.localstack.sshd:SSHGitServer",
    "kube": "tests.localstack.kube:ControlPlane",
    "buildah": "tests.localstack.buildah:Buildah",
    "process-node": "tests.localstack.process_node:ProcessNode",
}


class Component:
    name = ""
    requires: tuple[str, ...] = ()

    def __init__(self, stack: "LocalStack"):
        self.stack = stack
        self.workdir = stack.workdir / self.name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_dir = stack.log_dir
        self.processes = []  # ManagedProcess, stopped in reverse order

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()

    def info(self) -> dict:
        raise NotImplementedError

    def logs(self) -> list[Path]:
        return [p.log for p in self.processes]


class LocalStack:
    def __init__(self, workdir: Path | None = None, keep: bool = False):
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="gitops-ui-stack-"))
        # Some parts run as their own system user (PostgreSQL) and must reach their folders.
        self.workdir.chmod(0o755)
        self.log_dir = self.workdir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self.started: dict[str, Component] = {}

    def get(self, name: str) -> Component:
        """The running component `name`, started (with what it requires) if it is not yet."""
        if name in self.started:
            return self.started[name]
        if name not in COMPONENTS:
            raise StackError(f"no stack component named {name!r}")
        module_name, class_name = COMPONENTS[name].split(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        for dep in cls.requires:
            self.get(dep)
        component = cls(self)
        try:
            component.start()
        except BaseException:
            component.stop()
            raise
        self.started[name] = component
        return component

    def info(self) -> dict:
        return {name: c.info() for name, c in self.started.items()}

    def logs(self) -> list[Path]:
        return [log for c in self.started.values() for log in c.logs()]

    def stop(self) -> None:
        for name in reversed(list(self.started)):
            self.started.pop(name).stop()
        if self._own_dir and not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
