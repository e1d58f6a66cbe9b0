"""A Git server over SSH: Debian's OpenSSH sshd on a loopback port, with its own host key, one
authorized client key, and a ForceCommand (git_ssh.py) that serves only git fetch and push for
the repositories of the Git HTTP server (tests create them with git_server.create_repo()).

It runs as the current user, who is the only one allowed to log in, with the key only.
"""
from __future__ import annotations

import getpass
import os
import shlex
import shutil
import sys
from pathlib import Path

from . import Component
from .process import ManagedProcess, StackError, free_port, port_open, run

SSHD = "/usr/sbin/sshd"  # Debian's openssh-server; outside a normal user's PATH


def make_key(path: Path) -> str:
    """A new ed25519 key pair at `path` (and `path`.pub) without passphrase; the private key."""
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "gitops-ui-test", "-f", path],
        "ssh-keygen")
    return path.read_text()


class SSHGitServer(Component):
    name = "sshd"
    requires = ("git",)

    def start(self) -> None:
        if not os.access(SSHD, os.X_OK) or not shutil.which("ssh-keygen"):
            raise StackError("OpenSSH is not installed; run `tools/install.sh system`")
        git = self.stack.get("git")
        if os.geteuid() == 0:  # sshd started by root separates privileges through this folder
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.user = getpass.getuser()
        host_key = self.workdir / "host_ed25519_key"
        make_key(host_key)
        self.client_key_path = self.workdir / "client_ed25519_key"
        self.private_key = make_key(self.client_key_path)
        authorized = self.workdir / "authorized_keys"
        authorized.write_text(Path(f"{self.client_key_path}.pub").read_text())
        self.port = free_port()
        command = " ".join(shlex.quote(str(a)) for a in (
            sys.executable, Path(__file__).with_name("git_ssh.py"), git.root))
        config = self.workdir / "sshd_config"
        config.write_text("\n".join([
            "ListenAddress 127.0.0.1", f"Port {self.port}", f"HostKey {host_key}",
            "PidFile none", f"AuthorizedKeysFile {authorized}", "AuthenticationMethods publickey",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
            "StrictModes no", "PermitRootLogin prohibit-password", f"AllowUsers {self.user}",
            f"ForceCommand {command}", "DisableForwarding yes", "PermitTTY no",
            "PrintMotd no", "LogLevel VERBOSE", ""]))
        host_public = Path(f"{host_key}.pub").read_text().split()
        self.known_hosts = f"[127.0.0.1]:{self.port} {host_public[0]} {host_public[1]}\n"
        run([SSHD, "-t", "-f", config], "sshd config check")
        proc = ManagedProcess("sshd", [SSHD, "-D", "-e", "-f", config], self.log_dir)
        self.processes.append(proc.start())
        proc.wait_until(lambda: port_open(self.port), 15, "sshd listening")

    def url(self, name: str) -> str:
        """ssh:// URL of the repository `name` the Git HTTP server holds."""
        return f"ssh://{self.user}@127.0.0.1:{self.port}/{name}.git"

    def info(self) -> dict:
        return {"port": self.port, "user": self.user, "known_hosts": self.known_hosts,
                "client_key": str(self.client_key_path)}
