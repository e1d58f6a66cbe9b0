"""PostgreSQL from Debian's package, initdb'd into the stack's temporary directory."""
from __future__ import annotations

import glob
import os
import pwd
import signal
import subprocess
from pathlib import Path

from . import Component
from .process import ManagedProcess, StackError, free_port, port_open, run


def postgres_bin_dir() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not found:
        raise StackError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres); "
                         "run `make deps`")
    return os.path.dirname(found[-1])


class Postgres(Component):
    name = "postgres"
    user = "gitops"
    password = "gitops-test"
    database = "gitops"

    def start(self) -> None:
        bindir = postgres_bin_dir()
        pwfile = self.workdir / "pwfile"
        pwfile.write_text(self.password)
        system_user = _system_user(self.workdir)
        as_user = _setpriv(system_user)
        data = self.workdir / "data"
        run(as_user + [f"{bindir}/initdb", "-D", data, "-U", self.user, "--pwfile", pwfile,
                       "-A", "scram-sha-256", "-E", "UTF8", "--no-sync"], "initdb")
        self.port = free_port()
        # Durability off: a test database is thrown away, and fsync dominates test time.
        # The server itself in the foreground (not pg_ctl), so it gets the parent-death
        # signal; SIGINT is PostgreSQL's fast shutdown (SIGTERM would wait for every client).
        proc = ManagedProcess("postgres", [
            f"{bindir}/postgres", "-D", data, "-h", "127.0.0.1", "-p", self.port,
            "-k", self.workdir, "-c", "fsync=off", "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off", "-c", "max_connections=200"], self.log_dir,
            user=system_user, death_signal=signal.SIGINT)
        self.processes.append(proc.start())
        # The port opens before recovery ends; pg_isready says when connections are accepted.
        proc.wait_until(lambda: port_open(self.port) and subprocess.run(
            [f"{bindir}/pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port)]).returncode == 0,
            30, "PostgreSQL accepting connections")
        run([f"{bindir}/createdb", "-h", "127.0.0.1", "-p", self.port, "-U", self.user,
             self.database], "createdb", env={**os.environ, "PGPASSWORD": self.password})

    @property
    def url(self) -> str:
        return f"postgres://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def info(self) -> dict:
        return {"url": self.url, "port": self.port}


def _system_user(workdir: Path) -> pwd.struct_passwd | None:
    """initdb refuses to run as root: as root, Debian's `postgres` system user, owning workdir."""
    if os.geteuid() != 0:
        return None
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError as exc:
        raise StackError("running as root needs the `postgres` user from Debian's package") from exc
    for path in [workdir, *workdir.iterdir()]:
        os.chown(path, pw.pw_uid, pw.pw_gid)
    return pw


def _setpriv(user: pwd.struct_passwd | None) -> list[str]:
    """The prefix that runs a setup command as `user` (nothing when not root)."""
    if user is None:
        return []
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
