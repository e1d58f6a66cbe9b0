"""An OCI/Docker registry from Debian's docker-registry (CNCF distribution), on a free loopback port.

Plain HTTP and htpasswd (bcrypt) auth, as a private registry asks for credentials: the app must
send them, and a test can prove an anonymous client is refused. Storage is a folder of the stack,
with deletes enabled so tag/manifest clean-up can be tested for real.
"""
from __future__ import annotations

import secrets
import shutil
import urllib.error
import urllib.request

from . import Component
from .process import ManagedProcess, StackError, free_port, run

REGISTRY_BIN = "/usr/bin/docker-registry"

CONFIG = """\
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:{port}
  secret: {secret}
auth:
  htpasswd:
    realm: gitops-ui-test-registry
    path: {htpasswd}
"""


class Registry(Component):
    name = "registry"
    username = "gitops"

    def start(self) -> None:
        if not shutil.which(REGISTRY_BIN):
            raise StackError(f"{REGISTRY_BIN} is not installed (Debian package docker-registry); "
                             "run `make deps`")
        if not shutil.which("htpasswd"):
            raise StackError("htpasswd is not installed (Debian package apache2-utils); "
                             "run `make deps`")
        self._password = secrets.token_hex(16)  # hex: safe inside URLs and --creds user:pass
        htpasswd = self.workdir / "htpasswd"
        # -B bcrypt (the only scheme distribution accepts), -b password on the command line,
        # -n print instead of editing a file.
        out = run(["htpasswd", "-Bbn", self.username, self._password], "htpasswd")
        htpasswd.write_text(out.stdout.strip() + "\n")
        storage = self.workdir / "storage"
        storage.mkdir(exist_ok=True)
        self.port = free_port()
        config = self.workdir / "config.yml"
        config.write_text(CONFIG.format(storage=storage, port=self.port,
                                        secret=secrets.token_hex(16), htpasswd=htpasswd))
        proc = ManagedProcess("registry", [REGISTRY_BIN, "serve", config], self.log_dir,
                              cwd=self.workdir)
        self.processes.append(proc.start())
        # 401 on /v2/ means: HTTP served, the API is up and auth is being enforced.
        proc.wait_until(self._answers_401, 30, "registry answering 401 on /v2/")

    def _answers_401(self) -> bool:
        try:
            urllib.request.urlopen(f"{self.url}/v2/", timeout=2)
        except urllib.error.HTTPError as exc:
            return exc.code == 401
        return False  # 200: auth is not being enforced; keep waiting, then fail with the log

    @property
    def host(self) -> str:
        """host:port, as in image references (`127.0.0.1:5000/app:1.0`)."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def password(self) -> str:
        return self._password

    def info(self) -> dict:
        return {"url": self.url, "host": self.host, "username": self.username,
                "password": self.password}
