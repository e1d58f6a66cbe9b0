"""Processes of the local stack: started on loopback, logged to a file, stopped for sure."""
from __future__ import annotations

import functools
import os
import pwd
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Sequence


class StackError(RuntimeError):
    """A component of the local stack could not be installed, built or started."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return "(no log yet)"
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    """One long-running program of the stack, with its output in `log`.

    The program must stay in the foreground (no daemonizing wrapper such as pg_ctl): the
    kernel sends it `death_signal` when the thread that started it ends, however it ends (a
    SIGKILLed pytest leaves nothing behind), so start components from the main thread.
    `user`: run as this system user (as root).
    """

    def __init__(self, name: str, argv: Sequence[str], log_dir: Path,
                 env: dict | None = None, cwd: Path | None = None,
                 user: pwd.struct_passwd | None = None, death_signal: int = signal.SIGTERM):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log = Path(log_dir) / f"{name}.log"
        self.env = env
        self.cwd = cwd
        self.user = user
        self.death_signal = death_signal
        self.proc: subprocess.Popen | None = None

    def start(self) -> "ManagedProcess":
        from gitops_ui.launcher import die_with_parent

        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "ab")
        # Popen switches user before preexec_fn runs: set after, the death signal survives
        # (the kernel clears it when a process changes its credentials).
        as_user = ({"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
                   if self.user else {})
        try:
            # Own process group, so stop() also ends whatever the program forks.
            self.proc = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **(self.env or {})}, cwd=self.cwd, start_new_session=True,
                preexec_fn=functools.partial(die_with_parent, self.death_signal), **as_user)
        except OSError as exc:
            raise StackError(f"{self.name}: cannot start {self.argv[0]}: {exc}") from exc
        finally:
            out.close()
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll `ready` until it is true; fail with the log tail if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise StackError(f"{self.name} exited with {self.proc.returncode} before {what}:\n"
                                 f"{tail(self.log)}")
            try:
                if ready():
                    return
            except Exception:  # not up yet: connection refused, 503, ...
                pass
            time.sleep(0.1)
        raise StackError(f"{self.name}: no {what} after {timeout:.0f} s:\n{tail(self.log)}")

    def stop(self, timeout: float = 10) -> None:
        if not self.running:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass


def run(argv: Sequence[str], what: str, **kwargs) -> subprocess.CompletedProcess:
    """Run a setup command to completion; a failure names the command and shows its output."""
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise StackError(f"{what} failed ({' '.join(map(str, argv))}):\n"
                         f"{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return result


def wait_for(ready: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `ready` (exceptions count as not yet) until true or fail naming `what`."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except Exception as exc:
            last = exc
        time.sleep(0.1)
    raise StackError(f"timed out after {timeout:.0f} s waiting for {what}"
                     + (f" (last error: {last})" if last else ""))
