"""Image builds with Debian's buildah, daemonless, pushing to the stack's registry.

Storage is the vfs driver under the stack's folder and RUN steps use chroot isolation: neither
needs overlayfs, fuse or user namespaces, so builds work as root inside an unprivileged container
and leave nothing in /var/lib/containers. The base image every test builds FROM is made locally
from Debian's static busybox and pushed to the registry, so no build ever reaches the internet.
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from . import Component
from .process import StackError, run

BUSYBOX = "/bin/busybox"  # Debian's busybox-static: one static binary, runs in an empty root


class Buildah(Component):
    name = "buildah"
    requires = ("registry",)

    def start(self) -> None:
        self.log = self.log_dir / "buildah.log"  # every buildah command and its output
        if not shutil.which("buildah"):
            raise StackError("buildah is not installed; run `make deps`")
        if not os.path.exists(BUSYBOX):
            raise StackError(f"{BUSYBOX} is missing (Debian package busybox-static); "
                             "run `make deps`")
        self.registry = self.stack.get("registry")
        self.tmp = self.workdir / "tmp"  # buildah spools layers in TMPDIR (/var/tmp otherwise)
        self.tmp.mkdir(exist_ok=True)
        self._build_base()

    @property
    def base_image(self) -> str:
        """The busybox base image in the stack's registry, for `FROM` lines."""
        return f"{self.registry.host}/base/busybox:1.35"

    def _build_base(self) -> None:
        ctr = self._buildah(["from", "--name", "base-busybox", "scratch"], "buildah from scratch")
        ctr = ctr.strip()
        self._buildah(["copy", ctr, BUSYBOX, "/bin/busybox"], "copy busybox into the base")
        # Symlinks for every applet (sh, echo, cat, ls, ...), made by busybox itself.
        self._buildah(["run", "--isolation", "chroot", ctr, "--",
                       "/bin/busybox", "--install", "-s", "/bin"], "busybox --install")
        self._buildah(["config", "--cmd", "sh", "--env", "PATH=/bin", ctr], "configure the base")
        self._buildah(["commit", "--rm", ctr, self.base_image], "commit the base image")
        self.push(self.base_image, self.base_image)
        # Builds then pull FROM the registry, with credentials, as a real build would.
        self._buildah(["rmi", self.base_image], "remove the local base image")

    def build(self, context_dir, tag: str, dockerfile: str = "Dockerfile") -> str:
        """Build `context_dir` (its `dockerfile`) as `tag`; the image id."""
        context = Path(context_dir)
        iidfile = self.tmp / f"iid-{uuid.uuid4().hex}"
        self._buildah(["build", "--isolation", "chroot", *self._registry_flags(),
                       "--iidfile", iidfile, "-f", context / dockerfile, "-t", tag, context],
                      f"build {tag}")
        return _read_and_remove(iidfile)

    def push(self, tag: str, dest_ref: str) -> str:
        """Push local image `tag` to `dest_ref` (host/name:tag, docker:// optional); its digest."""
        if not dest_ref.startswith("docker://"):
            dest_ref = f"docker://{dest_ref}"
        digestfile = self.tmp / f"digest-{uuid.uuid4().hex}"
        self._buildah(["push", *self._registry_flags(), "--digestfile", digestfile, tag,
                       dest_ref], f"push {tag} to {dest_ref}")
        return _read_and_remove(digestfile)

    def _registry_flags(self) -> list[str]:
        return ["--tls-verify=false",
                "--creds", f"{self.registry.username}:{self.registry.password}"]

    def _buildah(self, args: list, what: str) -> str:
        argv = ["buildah", "--storage-driver", "vfs", "--root", self.workdir / "root",
                "--runroot", self.workdir / "run", *args]
        env = {**os.environ, "TMPDIR": str(self.tmp), "BUILDAH_ISOLATION": "chroot"}
        shown = " ".join(map(str, argv)).replace(self.registry.password, "***")
        with open(self.log, "a") as log:
            log.write(f"$ {shown}\n")
            try:
                result = run(argv, what, env=env, cwd=self.workdir)
            except StackError as exc:
                log.write(f"{exc}\n".replace(self.registry.password, "***"))
                raise StackError(str(exc).replace(self.registry.password, "***")) from None
            log.write(result.stdout + result.stderr)
        return result.stdout

    def logs(self) -> list[Path]:
        return [self.log]

    def info(self) -> dict:
        return {"base_image": self.base_image, "root": str(self.workdir / "root"),
                "registry": self.registry.host}


def _read_and_remove(path: Path) -> str:
    try:
        return path.read_text().strip()
    finally:
        path.unlink(missing_ok=True)
