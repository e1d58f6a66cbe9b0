"""A stored secret follows its address only when it is entered again.

Secrets are write-only: an edit that leaves one out keeps the stored value. Without this rule,
anyone allowed to edit could point a repository's URL or a cluster's server at their own host,
press "check", and receive the password or token. So an edit that changes where a stored secret
is sent (or how the receiver is verified) must carry the secret again. The REST serializers and
the admin forms both ask `secrets_to_resend`; the table below is the one place that says which
fields send which secret where.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Collection, Mapping


def _changed(old, new) -> bool:
    return old != new


def _turned_on(old, new) -> bool:
    return bool(new) and not old


def _turned_off(old, new) -> bool:
    return bool(old) and not new


@dataclass(frozen=True)
class Address:
    field: str
    label: str  # for the message: "changing <label> requires ..."
    moves: Callable[[object, object], bool] = _changed  # (stored, new) -> does the secret move?


@dataclass(frozen=True)
class GuardedSecret:
    field: str
    label: str
    addresses: tuple[Address, ...]


# model label -> its secrets and the fields that decide where each is sent. A kubeconfig carries
# its own server, so it changes its address only by being sent again: nothing to guard.
GUARDED: dict[str, tuple[GuardedSecret, ...]] = {
    "clusters.Cluster": (GuardedSecret("token", "token", (
        Address("server", "the server"),
        Address("ca_data", "the CA"),
        Address("insecure", "insecure (no TLS verification)", _turned_on),
    )),),
    "repositories.Repository": (GuardedSecret("password", "password", (
        Address("url", "the URL"),
    )), GuardedSecret("ssh_private_key", "SSH private key", (
        Address("url", "the URL"),
        Address("ssh_known_hosts", "known_hosts"),  # which host the key is shown to
    )), GuardedSecret("gitlab_token", "GitLab token", (
        Address("gitlab_url", "the GitLab URL"),
    ))),
    "registries.Registry": (GuardedSecret("password", "password", (
        Address("url", "the URL"),
        Address("ca_data", "the CA"),
        Address("verify_tls", "TLS verification (turned off)", _turned_off),
    )),),
}


def secrets_to_resend(instance, new_values: Mapping, provided: Collection[str]) -> dict[str, str]:
    """secret field -> message, for each secret stored on `instance` that the edit `new_values`
    would send to a changed address although it is not among the `provided` fields."""
    if instance is None or instance.pk is None:
        return {}
    problems = {}
    for secret in GUARDED.get(instance._meta.label, ()):
        if secret.field in provided or not getattr(instance, secret.field):
            continue
        moved = [a.label for a in secret.addresses if a.field in new_values
                 and a.moves(getattr(instance, a.field), new_values[a.field])]
        if moved:
            problems[secret.field] = (f"changing {' and '.join(moved)} requires the "
                                      f"{secret.label} again")
    return problems
