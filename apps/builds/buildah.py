"""The buildah backend: daemonless builds and pushes on the build worker, as the local stack
runs them (vfs storage, chroot isolation; neither needs a daemon, fuse or user namespaces).

Registry credentials reach buildah in an auth file (0600, in a private folder made for one
command and removed after it), never on its command line, where `ps` shows them. Every command
runs in a process group of its own, so a cancel stops buildah and whatever it started.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlsplit

POLL = 0.5  # seconds between two looks at "was this build canceled?"


class BuildFailed(Exception):
    """A buildah command failed; the message says which step, its output is in the log."""


class BuildCanceled(Exception):
    """The build was canceled while a command ran; its process group was killed."""


@dataclass(frozen=True)
class RegistryAccess:
    """Where an image goes and how to log in there (nothing of it on a command line)."""

    host: str
    username: str = ""
    password: str = ""
    tls_verify: bool = True
    ca_pem: str = ""

    @classmethod
    def of(cls, registry) -> "RegistryAccess":
        plain_http = urlsplit(registry.url).scheme == "http"
        return cls(registry.host, registry.username, registry.password,
                   tls_verify=registry.verify_tls and not plain_http, ca_pem=registry.ca_data)


class Buildah:
    """buildah with its storage under `root` (images, containers, temporary layers)."""

    def __init__(self, root: Path | str, write: Callable[[str], None],
                 canceled: Callable[[], bool] = lambda: False, timeout: float = 1800):
        self.root = Path(root)
        self.write = write  # a line of output for the build's log
        self.canceled = canceled
        self.timeout = timeout
        # Long folder names shown short in the log ("<commit 1a2b3c4d>"): path -> label.
        self.aliases: dict[str, str] = {str(self.root / "tmp"): "<tmp>"}
        for name in ("storage", "run", "tmp"):
            (self.root / name).mkdir(parents=True, exist_ok=True)

    # --- the steps ------------------------------------------------------------------------
    def build(self, context: Path, dockerfile: Path, tags: list[str], access: RegistryAccess,
              build_args: dict, platform: str = "") -> None:
        argv = ["bud", "--isolation", "chroot", "-f", str(dockerfile)]
        for tag in tags:
            argv += ["-t", tag]
        for name, value in sorted(build_args.items()):
            argv += ["--build-arg", f"{name}={value}"]
        if platform:
            argv += ["--platform", platform]
        with auth_files(access, self.root / "tmp") as flags:
            self.run([*argv, *flags, str(context)], "build the image")

    def tag(self, image: str, *names: str) -> None:
        self.run(["tag", image, *names], "tag the image")

    def exists(self, image: str) -> bool:
        return subprocess.run(self._argv(["inspect", "--type", "image", image]), env=self._env(),
                              capture_output=True, timeout=60).returncode == 0

    def push(self, image: str, reference: str, access: RegistryAccess) -> str:
        """Push local `image` to `reference` (host/name:tag); the digest buildah pushed."""
        with auth_files(access, self.root / "tmp") as flags:
            digest_file = Path(flags[flags.index("--authfile") + 1]).parent / "digest"
            self.run(["push", *flags, "--digestfile", str(digest_file), image,
                      f"docker://{reference}"], f"push {reference}")
            return digest_file.read_text().strip() if digest_file.exists() else ""

    # --- running buildah -------------------------------------------------------------------
    def _argv(self, args: list[str]) -> list[str]:
        return ["buildah", "--storage-driver", "vfs", "--root", str(self.root / "storage"),
                "--runroot", str(self.root / "run"), *args]

    def _env(self) -> dict:
        # Only what buildah needs: nothing of the worker's environment (database URL, keys).
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root),
                "TMPDIR": str(self.root / "tmp"), "BUILDAH_ISOLATION": "chroot",
                "LC_ALL": "C.UTF-8"}

    def run(self, args: list[str], what: str) -> None:
        """Run buildah `args`, each output line to the log; BuildCanceled if canceled meanwhile,
        BuildFailed if it fails or outlives the timeout."""
        if not shutil.which("buildah"):
            raise BuildFailed("buildah is not installed on the build worker")
        argv = self._argv(args)
        self.write(f"$ buildah {self._shown(args)}")
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=self._env(), cwd=self.root,
                                start_new_session=True)
        reader = threading.Thread(target=self._relay, args=(proc,), daemon=True)
        reader.start()
        deadline = time.monotonic() + self.timeout
        try:
            while True:
                try:
                    proc.wait(POLL)
                    break
                except subprocess.TimeoutExpired:
                    if self.canceled():
                        _kill_group(proc)
                        raise BuildCanceled(f"canceled during: {what}") from None
                    if time.monotonic() > deadline:
                        _kill_group(proc)
                        raise BuildFailed(f"{what}: timed out after {self.timeout:g} s") from None
        finally:
            reader.join(5)
        if proc.returncode != 0:
            raise BuildFailed(f"{what} failed (buildah exited with {proc.returncode})")

    def _shown(self, args: list[str]) -> str:
        text = " ".join(args)
        for path, label in sorted(self.aliases.items(), key=lambda item: -len(item[0])):
            text = text.replace(path, label)
        return text

    def _relay(self, proc: subprocess.Popen) -> None:
        for raw in proc.stdout:
            self.write(raw.decode(errors="replace").rstrip("\n"))


def _kill_group(proc: subprocess.Popen) -> None:
    # buildah's own children (the RUN step's chroot, its shell) are in the group too.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(30)


@contextmanager
def auth_files(access: RegistryAccess, parent: Path) -> Iterator[list[str]]:
    """buildah flags for `access`: --authfile (credentials, mode 0600), --cert-dir (a CA),
    --tls-verify; the private folder holding them is removed on leaving the block."""
    folder = Path(tempfile.mkdtemp(prefix="auth-", dir=parent))  # mode 0700
    try:
        auth = folder / "auth.json"
        entries = {}
        if access.username:
            token = base64.b64encode(f"{access.username}:{access.password}".encode()).decode()
            entries[access.host] = {"auth": token}
        fd = os.open(auth, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"auths": entries}, out)
        flags = ["--authfile", str(auth), f"--tls-verify={'true' if access.tls_verify else 'false'}"]
        if access.ca_pem and access.tls_verify:
            certs = folder / "certs"
            certs.mkdir()
            (certs / "ca.crt").write_text(access.ca_pem)
            flags += ["--cert-dir", str(certs)]
        yield flags
    finally:
        shutil.rmtree(folder, ignore_errors=True)
