"""Git webhooks: who may send one (the token), each delivery handled once, a commit already
handled answered without queueing anything, and which applications a push refreshes
(refreshing.tracks_ref)."""
from __future__ import annotations

import hashlib
import hmac
from contextlib import suppress
from dataclasses import dataclass, field

from django.conf import settings

from apps.audit import services as audit
from apps.core.queues import REDIS_DOWN, QueueUnavailable, queue_errors, redis_connection
from apps.repositories import services as repositories

from . import polling
from .models import Application
from .queueing import SYNC_QUEUE, schedule_repository_refresh
from .refreshing import tracks_ref
from .services import NotPermitted


class WebhookSecretMissing(NotPermitted):
    """No webhook secret applies to the pushed repository, and open mode is off."""


DELIVERY_TTL = 24 * 3600  # GitLab retries a failed delivery within hours, not days


@dataclass
class PushOutcome:
    applications: list[Application] = field(default_factory=list)  # refreshed at once
    duplicate: bool = False  # this delivery was handled before: nothing done
    already_handled: bool = False  # the pushed commit was refreshed before: nothing done
    started: list = field(default_factory=list)  # what `then` started (a tag's builds)


def handle_push(url: str, token: str | None, *, ref: str = "", default_branch: str = "",
                delivery: str = "", after: str = "", then=None) -> PushOutcome:
    """A push to `url` (from a webhook): refresh, at once, the apps it can move.

    The token must match the repository's webhook secret, or the global one; with neither,
    the push is refused (WebhookSecretMissing) unless GITOPS_UI_WEBHOOK_OPEN is on. A
    `delivery` id seen in the last day is not handled again. With a `ref` (refs/heads/x,
    refs/tags/y), only the apps that track it are refreshed (tracks_ref); without, all the
    repository's apps. QueueUnavailable when the refresh cannot be queued (the sender retries).

    `after` is the sha the sender says the ref now points at (GitLab's payload). When every
    repository with that URL already handled it for that ref (refreshing.refresh_repository: each
    app following the ref refreshed at that sha without failure), nothing is queued: a flood of
    deliveries of one commit costs no git call. Otherwise the refresh job is queued, and its
    own look at the refs decides (a sender's word never skips a refresh it did not see done).

    `then(repos)`, for a first delivery with the right token, starts what else the push asks
    for (the builds of a tag: apps/builds); what it returns is the outcome's `started`.
    """
    repos = repositories.find_by_url(url)
    _check_webhook_token(repos, token)
    if not first_delivery(delivery):
        return PushOutcome(duplicate=True)
    try:
        started = then(repos) if then is not None else []
        if ref and _handled_everywhere(repos, ref, after):
            return PushOutcome(already_handled=True, started=started)
        for repo in repos:
            # Ahead of background refreshes (watch events, the schedule): someone is waiting.
            schedule_repository_refresh(repo.pk, ref, default_branch, at_front=True)
    except QueueUnavailable:
        forget_delivery(delivery)  # the sender's retry must not look like a duplicate
        raise
    for repo in repos:  # why the refreshes (and automated syncs) that follow happen
        audit.record("repository.push", repo, actor="webhook",
                     details={"ref": ref, "after": after, "delivery": delivery[:64]})
    # Only what tracks_ref and the answer read: not every app's status JSON, ~40 ms at N=300.
    apps = Application.objects.filter(repository__in=repos).only("name", "chart", "revision", "pinned_revision")
    return PushOutcome([app for app in apps if tracks_ref(app, ref, default_branch)],
                       started=started)


def _handled_everywhere(repos: list, ref: str, after: str) -> bool:
    if not repos or len(after) != 40 or after == "0" * 40:  # no sha, or a deletion
        return False
    with queue_errors("the push"):
        return all((record := polling.handled(repo.pk, ref)) is not None and record.covers(after)
                   for repo in repos)


def _check_webhook_token(repos: list, token: str | None) -> None:
    global_secret = settings.GITOPS_UI_WEBHOOK_SECRET
    for expected in [repo.webhook_secret or global_secret for repo in repos] or [global_secret]:
        if expected and not _same_secret(token, expected):
            raise NotPermitted("the webhook token does not match")
        if not expected and not settings.GITOPS_UI_WEBHOOK_OPEN:
            raise WebhookSecretMissing(
                "webhooks are refused until a secret is configured: set the repository's "
                "webhook secret or GITOPS_UI_WEBHOOK_SECRET, and send it as X-Gitlab-Token "
                "(or set GITOPS_UI_WEBHOOK_OPEN=true to accept webhooks without a token)")


def _delivery_key(delivery: str) -> str:
    # Hashed: the id is the sender's text, of any length.
    return f"gitops-ui:webhook-delivery:{hashlib.sha256(delivery.encode()).hexdigest()}"


def first_delivery(delivery: str) -> bool:
    """True unless this delivery id was seen in the last DELIVERY_TTL (no id: always True)."""
    if not delivery:
        return True
    with queue_errors("the push"):
        return bool(redis_connection(SYNC_QUEUE).set(
            _delivery_key(delivery), 1, nx=True, ex=DELIVERY_TTL))


def forget_delivery(delivery: str) -> None:
    if delivery:
        with suppress(*REDIS_DOWN):
            redis_connection(SYNC_QUEUE).delete(_delivery_key(delivery))


def _same_secret(given: str | None, expected: str) -> bool:
    return hmac.compare_digest((given or "").encode(), expected.encode())  # constant time
