"""Who is acting, and from where, for the audit log, without passing the request around.

`RequestContextMiddleware` puts the request in a context variable for the time of its view;
`services.record` reads the user (as authenticated by then, session or API token), the client's
address and user agent from it. Code that acts without a request (workers, the reconciler, a
webhook) names itself with `acting_as("reconciler")`.
"""
from __future__ import annotations

import ipaddress
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings


@dataclass(frozen=True)
class Actor:
    request: object | None = None
    label: str = ""


_current: ContextVar[Actor] = ContextVar("audit_actor", default=Actor())


def current() -> Actor:
    return _current.get()


@contextmanager
def acting_as(label: str):
    """Entries recorded inside are attributed to `label` unless a signed-in user is acting."""
    token = _current.set(Actor(request=_current.get().request, label=label))
    try:
        yield
    finally:
        _current.reset(token)


class RequestContextMiddleware:
    # Both modes, so it never forces an ASGI request through an extra thread switch.
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        token = _current.set(Actor(request=request))
        try:
            return self.get_response(request)
        finally:
            _current.reset(token)

    async def _acall(self, request):
        token = _current.set(Actor(request=request))
        try:
            return await self.get_response(request)
        finally:
            _current.reset(token)


def client_ip(request) -> str | None:
    """The client's address: REMOTE_ADDR, or, when REMOTE_ADDR is one of the proxies named in
    GITOPS_UI_TRUSTED_PROXIES, the last X-Forwarded-For entry that is not a trusted proxy
    (anyone can write X-Forwarded-For; only what a trusted proxy appended counts). Also django-axes'
    AXES_CLIENT_IP_CALLABLE, so lockouts and the audit log see the same address."""
    meta = getattr(request, "META", {})
    remote = _valid_ip(meta.get("REMOTE_ADDR", ""))
    trusted = _trusted_networks()
    if remote is None or not trusted or not _in(remote, trusted):
        return remote
    hops = [h.strip() for h in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    for hop in reversed(hops):
        ip = _valid_ip(hop)
        if ip is None:
            return remote  # a malformed chain: trust nothing beyond the proxy itself
        if not _in(ip, trusted):
            return ip
    return remote


def _valid_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def _trusted_networks():
    return [ipaddress.ip_network(n, strict=False)
            for n in getattr(settings, "GITOPS_UI_TRUSTED_PROXIES", [])]


def _in(ip: str, networks) -> bool:
    address = ipaddress.ip_address(ip)
    return any(address in network for network in networks)
