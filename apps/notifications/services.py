"""Outgoing webhooks per project: sync failed, health degraded, deployed (a new revision Synced
and Healthy), sent as generic JSON or as a Slack message by a worker job, retried with backoff.

The engine calls `operation_finished` when an operation ends and `status_changed` when an
application's status changes (apps/applications/operations.py, reconcile.py). Both cost no
query unless there may be an event (an operation failed; the app turned Degraded, or is Synced
and Healthy at a synced revision), then one when the project has no webhook. Each event to each
webhook is a Delivery row: `deliver` (the job) makes one attempt; a failed one is tried again
after GITOPS_UI_NOTIFY_BACKOFF × 3^n seconds, by `retry_due` (a periodic task of the
reconciler), up to GITOPS_UI_NOTIFY_ATTEMPTS attempts; the last error and HTTP status stay on
the row for the API and the admin. A webhook's URL is a secret (Slack's carries its token): no
message here ever contains it, only its host.
"""
from __future__ import annotations

import functools
import json
import logging
from datetime import timedelta

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.audit import services as audit
from apps.core.queues import QueueUnavailable, job_queue, queue_errors

from .models import DeployedRevision, Delivery, Event, Webhook

log = logging.getLogger(__name__)
QUEUE = "default"
TIMEOUT_SECONDS = 5.0
LEASE = timedelta(seconds=60)  # an attempt in progress is not started again by retry_due
FAILED_PHASES = ("Failed", "Error")


# --- events ------------------------------------------------------------------------------------
def never_raises(hook):
    """A notification that cannot be prepared is logged; the refresh or sync that called goes on."""
    @functools.wraps(hook)
    def guarded(*args, **kwargs):
        try:
            return hook(*args, **kwargs)
        except Exception:  # noqa: BLE001 - logged with its traceback
            log.exception("notification hook %s failed", hook.__name__)
            return []
    return guarded


@never_raises
def operation_finished(op) -> list[Delivery]:
    """A sync or rollback that ended Failed or Error: `sync_failed`."""
    if op.phase not in FAILED_PHASES or op.kind == "delete" or op.options.get("dry_run"):
        return []
    app = op.application
    return _notify(app, Event.SYNC_FAILED, {
        "operation": op.pk, "kind": op.kind, "phase": op.phase, "message": op.message,
        "revision": op.sha or op.revision, "initiator": op.initiator})


@never_raises
def status_changed(app, previous_health: str) -> list[Delivery]:
    """After an application's status changed: `health_degraded` when it turned Degraded;
    `deployed` the first time a synced revision is Synced and Healthy."""
    degraded = app.health_status == "Degraded" and previous_health != "Degraded"
    deployed = app.health_status == "Healthy" and app.sync_status == "Synced" and app.synced_sha
    if not (degraded or deployed):  # most changes: no query at all
        return []
    webhooks = list(Webhook.objects.filter(project_id=app.project_id, enabled=True))
    if not webhooks:
        return []
    sent = []
    if degraded:
        sent += _notify(app, Event.HEALTH_DEGRADED, {"message": app.health_message,
                                                     "revision": app.synced_sha}, webhooks)
    if deployed:
        state, created = DeployedRevision.objects.get_or_create(
            application_id=app.pk, defaults={"sha": app.synced_sha})
        # A conditional update: two processes seeing the same change announce it once.
        if created or DeployedRevision.objects.filter(pk=state.pk).exclude(
                sha=app.synced_sha).update(sha=app.synced_sha):
            sent += _notify(app, Event.DEPLOYED, {"revision": app.synced_sha}, webhooks)
    return sent


def _notify(app, event: str, facts: dict, webhooks: list[Webhook] | None = None) -> list[Delivery]:
    """`webhooks`: the project's enabled ones, when the caller has just read them."""
    deliveries = []
    now = timezone.now()
    if webhooks is None:
        webhooks = Webhook.objects.filter(project_id=app.project_id, enabled=True)
    for webhook in webhooks:
        if event not in webhook.events:
            continue
        payload = {"event": event, "application": app.name, "project": app.project.name,
                   "sync": app.sync_status, "health": app.health_status, "at": now.isoformat(),
                   **facts}
        delivery = Delivery.objects.create(webhook=webhook, event=event, application=app.name,
                                           payload=payload, next_attempt_at=now)
        _enqueue(delivery.pk)
        deliveries.append(delivery)
    return deliveries


def _enqueue(delivery_id: int) -> None:
    from . import jobs

    def queue_it():
        try:
            with queue_errors("a notification"):
                job_queue(QUEUE).enqueue(jobs.deliver, delivery_id)
        except QueueUnavailable as exc:  # retry_due sends it once Redis is back
            log.warning("%s", exc)

    transaction.on_commit(queue_it)


# --- delivery ----------------------------------------------------------------------------------
def body(delivery: Delivery) -> dict:
    """What is POSTed: the payload itself (generic JSON), or a Slack message."""
    if delivery.webhook.kind == Webhook.Kind.SLACK:
        return {"text": slack_text(delivery.payload)}
    return delivery.payload


def slack_text(p: dict) -> str:
    revision = (p.get("revision") or "")[:12]
    if p["event"] == Event.SYNC_FAILED:
        return (f":x: {p.get('kind', 'sync').capitalize()} of *{p['application']}* "
                f"({p['project']}) {p.get('phase', 'failed').lower()}"
                f"{f' at `{revision}`' if revision else ''}: {p.get('message', '')}")
    if p["event"] == Event.HEALTH_DEGRADED:
        return (f":warning: *{p['application']}* ({p['project']}) is Degraded"
                f"{': ' + p['message'] if p.get('message') else ''}")
    return f":white_check_mark: *{p['application']}* ({p['project']}) deployed `{revision}`: Healthy"


def deliver(delivery_id: int) -> Delivery | None:
    """One attempt (the job). None when the delivery is not due, or another worker has it."""
    now = timezone.now()
    claimed = Delivery.objects.filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
        pk=delivery_id, state=Delivery.State.PENDING).update(next_attempt_at=now + LEASE)
    if not claimed:
        return None
    delivery = Delivery.objects.select_related("webhook").get(pk=delivery_id)
    webhook = delivery.webhook
    status, error = None, ""
    try:
        response = requests.post(
            webhook.url, data=json.dumps(body(delivery)), timeout=TIMEOUT_SECONDS,
            allow_redirects=False,
            headers={"Content-Type": "application/json", "User-Agent": "GitOps-UI",
                     "X-GitOps-UI-Event": delivery.event})
        status = response.status_code
        if not 200 <= status < 300:
            error = f"{webhook.host} answered HTTP {status}"
    except requests.Timeout:
        error = f"{webhook.host} did not answer within {TIMEOUT_SECONDS:g} s"
    except requests.ConnectionError:
        error = f"cannot connect to {webhook.host}"
    except requests.RequestException as exc:  # its text may hold the URL: the type only
        error = f"request to {webhook.host} failed ({type(exc).__name__})"
    delivery.attempts += 1
    delivery.last_status, delivery.last_error = status, error
    if not error:
        delivery.state, delivery.finished_at, delivery.next_attempt_at = (
            Delivery.State.DELIVERED, timezone.now(), None)
    elif delivery.attempts >= settings.GITOPS_UI_NOTIFY_ATTEMPTS:
        delivery.state, delivery.finished_at, delivery.next_attempt_at = (
            Delivery.State.FAILED, timezone.now(), None)
        log.warning("notification %s of %s to %s failed after %s attempts: %s", delivery.event,
                    delivery.application, webhook, delivery.attempts, error)
    else:
        delivery.next_attempt_at = timezone.now() + timedelta(
            seconds=settings.GITOPS_UI_NOTIFY_BACKOFF * 3 ** (delivery.attempts - 1))
    delivery.save(update_fields=["attempts", "last_status", "last_error", "state",
                                 "finished_at", "next_attempt_at"])
    return delivery


def retry_due() -> int:
    """Queue the attempts that are due (failed ones after their backoff, and any whose job was
    lost); returns how many."""
    due = list(Delivery.objects.filter(state=Delivery.State.PENDING,
                                       next_attempt_at__lte=timezone.now())
               .values_list("pk", flat=True)[:500])
    for pk in due:
        _enqueue(pk)
    return len(due)


def retry(delivery: Delivery) -> Delivery:
    """Send a failed delivery again, now, with a fresh count of attempts."""
    Delivery.objects.filter(pk=delivery.pk, state=Delivery.State.FAILED).update(
        state=Delivery.State.PENDING, attempts=0, next_attempt_at=timezone.now(),
        finished_at=None)
    delivery.refresh_from_db()
    if delivery.state == Delivery.State.PENDING:
        _enqueue(delivery.pk)
        audit.record("webhook.retry", delivery.webhook, details={
            "delivery": delivery.pk, "event": delivery.event,
            "application": delivery.application})
    return delivery


# --- webhooks ----------------------------------------------------------------------------------
WEBHOOK_FIELDS = ("project", "name", "kind", "url", "events", "enabled")


def save_webhook(webhook: Webhook) -> Webhook:
    return audit.save_recorded(webhook, "webhook", WEBHOOK_FIELDS)


def delete_webhook(webhook: Webhook) -> None:
    project, name, pk = webhook.project, str(webhook), webhook.pk
    webhook.delete()
    audit.record("webhook.deleted", None, object_type="webhook", object_name=name,
                 project=project, details={"id": pk})
