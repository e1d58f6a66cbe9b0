"""Redis from Debian's redis-server, no persistence, on a free loopback port."""
from __future__ import annotations

import shutil

from . import Component
from .process import ManagedProcess, StackError, free_port, port_open


class Redis(Component):
    name = "redis"

    def start(self) -> None:
        server = shutil.which("redis-server")
        if not server:
            raise StackError("redis-server is not installed; run `make deps`")
        self.port = free_port()
        proc = ManagedProcess("redis", [
            server, "--bind", "127.0.0.1", "--port", self.port, "--save", "",
            "--appendonly", "no", "--dir", self.workdir], self.log_dir)
        self.processes.append(proc.start())
        proc.wait_until(lambda: port_open(self.port), 15, "Redis listening")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def info(self) -> dict:
        return {"url": self.url, "port": self.port}
