"""Kubeconfig documents read as data, never executed.

The `kubernetes` package's loader runs `exec` plugins, honours `auth-provider` and reads every
file a kubeconfig names: a stored kubeconfig would run commands and read files of our server.
This parser resolves one context to its cluster and user and keeps only inline values; every
field that could run a command, read a file or redirect traffic is refused with a message naming
it. Messages never repeat a value (it may be key material), only names and field names.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import yaml

from .errors import ClusterError


class KubeconfigError(ClusterError):
    """The kubeconfig cannot be read: not YAML, no such context, a missing or malformed value."""


class KubeconfigRefused(KubeconfigError):
    """The kubeconfig uses a field GitOps UI refuses (runs a command, reads a file, ...)."""


@dataclass(frozen=True)
class Credentials:
    """Where a cluster is and how to prove who we are; secrets stay out of repr()."""
    server: str
    ca_pem: bytes | None = field(default=None, repr=False)
    insecure: bool = False
    tls_server_name: str | None = None
    token: str | None = field(default=None, repr=False)
    client_cert_pem: bytes | None = field(default=None, repr=False)
    client_key_pem: bytes | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)


# field -> why it is refused. The names are kubeconfig's own (both spellings where kubectl
# accepts two).
_REFUSED_CLUSTER = {
    "certificate-authority": "names a file on the server",
    "proxy-url": "sends the traffic through a proxy",
}
_REFUSED_USER = {
    "exec": "runs a command on the server",
    "auth-provider": "runs a login plugin that reads files and runs commands on the server",
    "tokenFile": "reads a file on the server",
    "token-file": "reads a file on the server",
    "client-certificate": "names a file on the server",
    "client-key": "names a file on the server",
}
_ADVICE_CLUSTER = "use certificate-authority-data and a direct https:// server"
_ADVICE_USER = "use a token or inline client certificate (client-certificate-data, client-key-data)"

_CLUSTER_KEYS = {"server", "certificate-authority-data", "insecure-skip-tls-verify",
                 "tls-server-name", "extensions", "disable-compression"}
_USER_KEYS = {"token", "client-certificate-data", "client-key-data", "username", "password",
              "extensions"}


def parse(text: str, context: str | None = None) -> Credentials:
    """The credentials of `context` (default: current-context) of the kubeconfig `text`."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise KubeconfigError(f"the kubeconfig is not valid YAML{where}") from None
    if not isinstance(doc, dict):
        raise KubeconfigError("the kubeconfig is not a YAML mapping (kind: Config)")
    context_name = context or doc.get("current-context")
    if not context_name:
        raise KubeconfigError("the kubeconfig has no current-context")
    ctx = _named(doc, "contexts", "context", context_name)
    cluster_name, user_name = ctx.get("cluster"), ctx.get("user")
    if not cluster_name:
        raise KubeconfigError(f"the kubeconfig's context '{context_name}' names no cluster")
    cluster = _named(doc, "clusters", "cluster", cluster_name)
    user = _named(doc, "users", "user", user_name) if user_name else {}
    _refuse(cluster, "cluster", cluster_name, _REFUSED_CLUSTER, _CLUSTER_KEYS, _ADVICE_CLUSTER)
    _refuse(user, "user", user_name, _REFUSED_USER, _USER_KEYS, _ADVICE_USER)

    server = cluster.get("server")
    parts = urlsplit(server) if isinstance(server, str) else None
    if not parts or parts.scheme not in ("https", "http") or not parts.hostname:
        raise KubeconfigError(f"the kubeconfig's cluster '{cluster_name}' needs a `server` "
                              f"https:// URL")
    insecure = cluster.get("insecure-skip-tls-verify", False)
    if not isinstance(insecure, bool):
        raise KubeconfigError(f"the kubeconfig's cluster '{cluster_name}' has an "
                              f"`insecure-skip-tls-verify` that is not true or false")
    credentials = Credentials(
        server=server.rstrip("/"),
        ca_pem=_pem(cluster, "certificate-authority-data", "cluster", cluster_name),
        insecure=insecure,
        tls_server_name=_text(cluster, "tls-server-name", "cluster", cluster_name),
        token=_text(user, "token", "user", user_name),
        client_cert_pem=_pem(user, "client-certificate-data", "user", user_name),
        client_key_pem=_pem(user, "client-key-data", "user", user_name),
        username=_text(user, "username", "user", user_name),
        password=_text(user, "password", "user", user_name),
    )
    if bool(credentials.client_cert_pem) != bool(credentials.client_key_pem):
        raise KubeconfigError(f"the kubeconfig's user '{user_name}' needs both "
                              f"client-certificate-data and client-key-data")
    return credentials


def _named(doc: dict, section: str, key: str, name: str) -> dict:
    """The `key` mapping of the entry called `name` in the list `section`."""
    entries = doc.get(section) or []
    if not isinstance(entries, list):
        raise KubeconfigError(f"the kubeconfig's `{section}` is not a list")
    for entry in entries:
        if isinstance(entry, dict) and entry.get("name") == name:
            value = entry.get(key) or {}
            if not isinstance(value, dict):
                raise KubeconfigError(f"the kubeconfig's {key} '{name}' is not a mapping")
            return value
    raise KubeconfigError(f"the kubeconfig has no {key} named '{name}'")


def _refuse(entry: dict, what: str, name: str, refused: dict, allowed: set, advice: str) -> None:
    for key in entry:
        if key in refused:
            reason = f" ({refused[key]})"
        elif key not in allowed:
            reason = " (not supported)"
        else:
            continue
        raise KubeconfigRefused(f"the kubeconfig's {what} '{name}' uses `{key}`{reason}: "
                                f"not allowed; {advice}")


def _text(entry: dict, key: str, what: str, name: str) -> str | None:
    value = entry.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise KubeconfigError(f"the kubeconfig's {what} '{name}' has a `{key}` that is not text")
    return value


def _pem(entry: dict, key: str, what: str, name: str) -> bytes | None:
    value = _text(entry, key, what, name)
    if value is None:
        return None
    try:
        pem = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise KubeconfigError(f"the kubeconfig's {what} '{name}' has a `{key}` that is not "
                              f"base64") from None
    if b"-----BEGIN " not in pem:
        raise KubeconfigError(f"the kubeconfig's {what} '{name}' has a `{key}` that is not PEM")
    return pem
