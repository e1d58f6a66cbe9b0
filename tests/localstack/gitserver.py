"""A Git server over smart HTTP with Basic auth: tests/localstack/git_http.py as its own process.

Bare repositories live in the stack's folder; tests create them with create_repo() and reach them
by URL exactly as the app reaches a hosted Git remote (clone, push, ls-remote with credentials).
"""
from __future__ import annotations

import secrets
import shutil
import sys
from pathlib import Path
from urllib.parse import quote

from . import Component
from .git_http import write_users
from .process import ManagedProcess, StackError, free_port, port_open, run

PROJECT_DIR = Path(__file__).resolve().parents[2]  # so `python -m tests.localstack...` imports


class GitServer(Component):
    name = "git"
    username = "gitops"

    def start(self) -> None:
        if not shutil.which("git"):
            raise StackError("git is not installed; run `make deps`")
        self.root = self.workdir / "repos"
        self.root.mkdir(exist_ok=True)
        self._password = secrets.token_hex(16)
        users = self.workdir / "users.json"
        write_users(users, self.username, self._password)
        self.port = free_port()
        proc = ManagedProcess("git-http", [
            sys.executable, "-m", "tests.localstack.git_http", "--root", self.root,
            "--port", self.port, "--users", users], self.log_dir, cwd=PROJECT_DIR,
            env={"PYTHONUNBUFFERED": "1"})
        self.processes.append(proc.start())
        proc.wait_until(lambda: port_open(self.port), 15, "git HTTP server listening")

    def create_repo(self, name: str) -> str:
        """A new empty bare repository `<name>.git` (default branch main); its clone URL."""
        path = self.root / f"{name}.git"
        if path.exists():
            raise StackError(f"git repository {name!r} already exists")
        path.parent.mkdir(parents=True, exist_ok=True)
        run(["git", "init", "--quiet", "--bare", "--initial-branch=main", path],
            f"git init {name}")
        return self.url(name)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}.git"

    def auth_url(self, name: str) -> str:
        """The clone URL with the credentials in it, for the git CLI."""
        creds = f"{quote(self.username, safe='')}:{quote(self.password, safe='')}"
        return f"http://{creds}@127.0.0.1:{self.port}/{name}.git"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def password(self) -> str:
        return self._password

    def info(self) -> dict:
        return {"url": self.base_url, "port": self.port, "username": self.username,
                "password": self.password, "root": str(self.root)}
