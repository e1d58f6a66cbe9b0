"""How git reaches a remote: which URLs are allowed, the credentials handed over, and the
messages made from git's failures.

HTTPS: credentials reach git only through the environment of the git process (read back by the
askpass helper when the server asks), so they are never in a URL, a config file or an argument
list.

SSH: the private key and known_hosts are written to anonymous in-memory files (memfd) this
process holds open during the call; ssh opens them as /proc/<our pid>/fd/N (ssh closes every
inherited descriptor first, so /proc/self/fd/N in ssh would not work): never a file on a disk,
never the key itself on a command line, gone when the call ends. The host key is always checked
against the repository's known_hosts (StrictHostKeyChecking=yes, no other known_hosts file, no
agent, no user or system ssh config). A URL's user, host and path are checked here before git
sees them and reach ssh as separate arguments, never through a shell.

Every message built from git's output goes through `redact`.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

from ..errors import SourceError

ASKPASS = """#!/bin/sh
# git runs this when a server asks for credentials; they live only in git's environment.
case "$1" in
  Username*) printf '%s\\n' "$GITOPS_GIT_USERNAME" ;;
  *) printf '%s\\n' "$GITOPS_GIT_PASSWORD" ;;
esac
"""
HTTP_PROTOCOLS = "http:https"  # GIT_ALLOW_PROTOCOL's syntax
URL_USERINFO = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
PRIVATE_KEY_BLOCK = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.S)

# What an SSH address may hold: nothing ssh could read as an option ("-oProxyCommand=..."),
# nothing a shell would interpret, no password in the user part.
_USER = r"[A-Za-z0-9_.][A-Za-z0-9_.+-]*"
_HOST = r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]"
_PATH = r"[A-Za-z0-9_.~/%+@=:][A-Za-z0-9_.~/%+@=:-]*"
SSH_URL = re.compile(rf"ssh://(?:(?P<user>{_USER})@)?(?P<host>{_HOST})(?::(?P<port>[0-9]{{1,5}}))?"
                     rf"/(?P<path>{_PATH})")
SCP_URL = re.compile(rf"(?:(?P<user>{_USER})@)?(?P<host>{_HOST}):(?P<path>{_PATH})")
KNOWN_HOSTS_LINE = re.compile(
    r"(@(cert-authority|revoked)\s+)?\S+\s+[A-Za-z0-9@.-]+\s+[A-Za-z0-9+/=]+(\s.*)?")
PRIVATE_KEY = re.compile(r"-----BEGIN ([A-Z]+ )?PRIVATE KEY-----\n[A-Za-z0-9+/=\n:,-]+\n"
                         r"-----END ([A-Z]+ )?PRIVATE KEY-----\n", re.S)


@dataclass(frozen=True)
class GitCredentials:
    """HTTPS credentials (username + password, or a token sent as the password), or for an SSH
    URL a private key and the known_hosts lines its server's host key must match."""
    username: str = ""
    password: str = ""
    token: str = ""
    ssh_private_key: str = ""
    ssh_known_hosts: str = ""

    def __repr__(self) -> str:  # a credential must not end up in a log through repr()
        return (f"GitCredentials(username={self.username!r}, password=***, token=***, "
                f"ssh_private_key={'***' if self.ssh_private_key else ''!r})")

    @property
    def secret(self) -> str:
        return self.password or self.token

    @property
    def login(self) -> str:
        # Hosts that take a token as the password accept any user name; "git" is conventional.
        return self.username or ("git" if self.token else "")


@dataclass(frozen=True)
class SSHAddress:
    user: str
    host: str  # as in known_hosts: an IPv6 address without its brackets
    port: int | None
    path: str

    @property
    def where(self) -> str:
        """The host as known_hosts names it."""
        return f"[{self.host}]:{self.port}" if self.port and self.port != 22 else self.host


def parse_ssh_url(url: str) -> SSHAddress | None:
    """The parts of an `ssh://[user@]host[:port]/path` or `[user@]host:path` URL; None for any
    other kind of URL. SourceError for an SSH URL whose parts are not allowed."""
    url = url.strip()
    if url.startswith("ssh://"):
        match = SSH_URL.fullmatch(url)
    elif "://" not in url and re.match(r"[^/]*@[^/]*:", url):
        # git's rule for scp-like: a colon before any slash, no scheme (a user@ asked for here).
        match = SCP_URL.fullmatch(url)
    else:
        return None
    if not match:
        # Not echoed: a refused URL may be a command line.
        raise SourceError("not a valid SSH repository URL: use ssh://user@host[:port]/path.git "
                          "or user@host:path.git (letters, digits and . _ - in user and host)")
    port = int(match["port"]) if match.groupdict().get("port") else None
    if port is not None and not 0 < port < 65536:
        raise SourceError("not a valid SSH repository URL: the port must be 1-65535")
    return SSHAddress(match["user"] or "", match["host"].strip("[]"), port, match["path"])


def check_known_hosts(text: str) -> str:
    """`text` as known_hosts lines (comments and blank lines kept); SourceError otherwise."""
    lines = [ln.strip() for ln in text.replace("\r\n", "\n").split("\n")]
    entries = [ln for ln in lines if ln and not ln.startswith("#")]
    if not entries:
        raise SourceError("known_hosts is empty: add the server's host key line(s), e.g. the "
                          "output of `ssh-keyscan -p PORT HOST`")
    for number, line in enumerate(lines, 1):
        if line and not line.startswith("#") and not KNOWN_HOSTS_LINE.fullmatch(line):
            raise SourceError(f"known_hosts line {number} is not 'host keytype base64-key'")
    return "\n".join(lines).strip() + "\n"


def check_private_key(text: str) -> str:
    """`text` as ssh reads a private key (PEM armour, a final newline); SourceError otherwise.
    The message never repeats the key."""
    key = text.replace("\r\n", "\n").strip() + "\n"
    if not PRIVATE_KEY.fullmatch(key):
        raise SourceError("the SSH private key must be a whole private key file in OpenSSH or PEM "
                          "format, from '-----BEGIN ... PRIVATE KEY-----' to its END line")
    return key


@contextmanager
def remote_access(url: str, creds: GitCredentials | None, askpass: str, timeout: float):
    """(environment, fds to pass, GIT_ALLOW_PROTOCOL) for a git call talking to `url` (without
    user info for http(s)); SourceError for a URL git may not reach."""
    ssh = parse_ssh_url(url)
    if ssh is None:
        check_http_remote(url)
        yield ({"GIT_ASKPASS": askpass, "GIT_TERMINAL_PROMPT": "0",
                "GITOPS_GIT_USERNAME": creds.login if creds else "",
                "GITOPS_GIT_PASSWORD": creds.secret if creds else ""}, (), HTTP_PROTOCOLS)
        return
    if not creds or not creds.ssh_private_key.strip() or not creds.ssh_known_hosts.strip():
        raise SourceError(f"{url} is an SSH repository: it needs a private key and the "
                          "server's known_hosts lines")
    program = shutil.which("ssh")
    if not program:
        raise SourceError("ssh is not installed on this server (Debian: openssh-client)")
    fds = []
    try:
        key = _in_memory("gitops-ui-ssh-key", check_private_key(creds.ssh_private_key))
        fds.append(key)
        hosts = _in_memory("gitops-ui-known-hosts", check_known_hosts(creds.ssh_known_hosts))
        fds.append(hosts)
        # git runs this through sh with the host and command appended as "$@": only our own
        # values are in it.
        fd_folder = f"/proc/{os.getpid()}/fd"
        command = " ".join([shlex.quote(program), "-F", "/dev/null",
                            "-i", f"{fd_folder}/{key}", "-o", "IdentitiesOnly=yes",
                            "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
                            "-o", f"UserKnownHostsFile={fd_folder}/{hosts}",
                            "-o", "GlobalKnownHostsFile=/dev/null",
                            "-o", "StrictHostKeyChecking=yes", "-o", "UpdateHostKeys=no",
                            "-o", "CheckHostIP=no",
                            "-o", f"ConnectTimeout={max(1, int(min(timeout, 30)))}"])
        yield ({"GIT_SSH_COMMAND": command, "GIT_SSH_VARIANT": "ssh", "GIT_TERMINAL_PROMPT": "0",
                "SSH_AUTH_SOCK": "", "SSH_ASKPASS": ""}, (), "ssh")
    finally:
        for fd in fds:
            os.close(fd)


def _in_memory(name: str, text: str) -> int:
    fd = os.memfd_create(name)
    os.fchmod(fd, 0o600)  # ssh refuses a key others could read
    os.write(fd, text.encode())
    return fd


def check_http_remote(url: str) -> None:
    """SourceError unless `url` is an http(s) URL with a host."""
    parts = urlsplit(url)
    if parts.scheme not in HTTP_PROTOCOLS.split(":") or not parts.hostname:
        # Not echoed: a refused URL may be a local path or a command line.
        raise SourceError("only http:// and https:// repository URLs, or SSH ones "
                          "(ssh://user@host/path.git, user@host:path.git), are supported")


def split_url(url: str) -> tuple[str, GitCredentials | None]:
    """The URL without user info (what goes to git and to disk) and credentials found in it.
    An SSH URL's user is part of its address, not a credential: kept."""
    parts = urlsplit(url.strip())
    if not parts.scheme or "@" not in parts.netloc or parts.scheme not in ("http", "https"):
        return url.strip().rstrip("/"), None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    clean = urlunsplit(parts._replace(netloc=host)).rstrip("/")
    return clean, GitCredentials(unquote(user), unquote(password))


def redact(text: str, url: str, creds: GitCredentials | None) -> str:
    """`text` without any credential: user info in URLs, the password/token given or in `url`,
    any private key."""
    text = URL_USERINFO.sub(r"\1***@", text)
    text = PRIVATE_KEY_BLOCK.sub("***", text)
    secrets = [creds.password, creds.token] if creds else []
    if creds and creds.ssh_private_key:
        secrets += [ln.strip() for ln in creds.ssh_private_key.splitlines()
                    if len(ln.strip()) >= 16]
    url_creds = split_url(url)[1]
    if url_creds:
        secrets.append(url_creds.password)
    for secret in filter(None, secrets):
        text = text.replace(secret, "***")
    return text


def explain(output: str, where: str, what: str) -> str:
    """A message for the user from git's (already redacted) failure output."""
    text = output.lower()
    ssh = parse_ssh_url(where) if _looks_like_ssh(where) else None
    if ssh is not None:
        if "remote host identification has changed" in text:
            return (f"host key verification failed for {ssh.where}: its host key does not match "
                    f"the repository's known_hosts (nothing was fetched)")
        if "host key verification failed" in text or "host key is known" in text:
            return (f"host key verification failed for {ssh.where}: the repository's known_hosts "
                    f"has no key for it (for a port other than 22 the entry reads "
                    f"[host]:port)")
        if "load key" in text or "invalid format" in text or "passphrase" in text:
            return ("the SSH private key cannot be used (not a private key, or protected by a "
                    "passphrase, which is not supported)")
        if "permission denied" in text:
            return f"authentication failed for {where}: the server refused the SSH key"
        if any(s in text for s in ("connection refused", "could not resolve hostname",
                                   "connection timed out", "no route to host",
                                   "network is unreachable", "operation timed out",
                                   "connection closed by", "connection reset")):
            detail = next((ln.strip() for ln in output.splitlines() if "ssh:" in ln
                           or "connect to host" in ln), "")
            return f"cannot reach {where}" + (f": {detail}" if detail else "")
    if any(s in text for s in ("authentication failed", "could not read username",
                               "could not read password", "returned error: 401",
                               "returned error: 403")):
        return f"authentication failed for {where}"
    if any(s in text for s in ("could not resolve host", "failed to connect", "connection refused",
                               "connection timed out", "couldn't connect", "network is unreachable",
                               "ssl certificate problem", "empty reply from server")):
        detail = next((ln for ln in output.splitlines() if "unable to access" in ln), "")
        detail = detail.split("': ", 1)[-1] if detail else ""
        return f"cannot reach {where}" + (f": {detail}" if detail else "")
    if "not found" in text and "repository" in text or "does not appear to be a git" in text:
        return f"repository not found: {where}"
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    return f"git {what} failed for {where}: " + ("; ".join(lines[-3:]) or "no output")


def _looks_like_ssh(url: str) -> bool:
    try:
        return parse_ssh_url(url) is not None
    except SourceError:
        return False
