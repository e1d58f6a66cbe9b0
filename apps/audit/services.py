"""The audit log: `record(action, obj)` from the service functions, with who and where taken
from the request being served (context.py), and `changes(obj)` for what an edit changes.

Secrets never reach an entry: a field whose name reads like one (password, token, secret, key,
kubeconfig, credentials) keeps only the fact that it changed, wherever it appears in `details`,
and encrypted model fields are treated the same whatever their name.
"""
from __future__ import annotations

import logging
import re
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import models, transaction

from apps.core.fields import EncryptedTextField

from . import context
from .models import AuditEntry

log = logging.getLogger(__name__)

# Deliberately broad (apiKey, ssh_private_key, X-Api-Key...): hiding a harmless value costs less
# than showing a secret.
SECRET_NAME = re.compile(r"pass(word|phrase)?|token|secret|key|kubeconfig|credential|private|"
                         r"authorization|cookie|digest|signature|^auth$", re.IGNORECASE)
CHANGED = "(changed)"
SET = "(set)"
# Written by the system, not by whoever edits: never reported as an edit.
NOT_EDITS = {"created_at", "updated_at", "last_login", "date_joined", "connection_status",
             "connection_message", "server_version", "sync_status", "health_status",
             "health_message", "target_sha", "synced_sha", "conditions", "resources",
             "reconciled_at", "resume_automated"}


def record(action: str, obj=None, *, details: dict | None = None, project=None, actor=None,
           object_type: str = "", object_name: str = "") -> AuditEntry | None:
    """Add an entry: `action` ("application.sync"), the object acted on, and `details`
    (JSON-able; secret-looking keys lose their values). The actor is `actor` if given (a user,
    or a label such as "webhook"), else the signed-in user of the current request, else the
    label set with context.acting_as, else "system". Never raises: an action that happened is
    not undone because its record could not be written (the failure is logged)."""
    try:
        entry = _entry(action, obj, details or {}, project, actor, object_type, object_name)
        if transaction.get_connection().in_atomic_block:
            with transaction.atomic():  # a failure here must not break the caller's transaction
                entry.save()
        else:  # no caller's transaction to protect: the INSERT alone, without BEGIN and COMMIT
            entry.save()
        return entry
    except Exception:  # noqa: BLE001 - the log line names it; the action itself stands
        log.exception("could not record audit entry %s", action)
        return None


def _entry(action, obj, details, project, actor, object_type, object_name) -> AuditEntry:
    current = context.current()
    request = current.request
    user, label = _actor(actor, request, current.label)
    project = project if project is not None else _project_of(obj)
    entry = AuditEntry(
        action=action[:64], actor=user,
        actor_name=(user.get_username() if user is not None else label)[:150],
        object_type=(object_type or (obj._meta.model_name if obj is not None else
                                     action.split(".", 1)[0]))[:32],
        object_id=str(getattr(obj, "pk", "") or "")[:64],
        object_name=(object_name or (str(obj) if obj is not None else ""))[:255],
        project_id=getattr(project, "pk", None), project_name=getattr(project, "name", "")[:63],
        details=scrub(details))
    if request is not None:
        entry.source_ip = context.client_ip(request)
        entry.user_agent = request.META.get("HTTP_USER_AGENT", "")[:300]
    return entry


def _actor(actor, request, label: str):
    if isinstance(actor, str):
        return None, actor
    if actor is not None and getattr(actor, "is_authenticated", False):
        return actor, ""
    user = getattr(request, "user", None) if request is not None else None
    if user is not None and user.is_authenticated:
        return user, ""
    return None, label or ("anonymous" if request is not None else "system")


def _project_of(obj):
    from apps.applications.models import Project

    if obj is None:
        return None
    if isinstance(obj, Project):
        return obj
    project = getattr(obj, "project", None)
    if isinstance(project, Project):
        return project
    application = getattr(obj, "application", None)
    return getattr(application, "project", None)


def scrub(value, key: str = ""):
    """`value` as JSON data, with the value of every secret-looking key replaced by CHANGED."""
    if key and SECRET_NAME.search(key):
        return value if value in (CHANGED, SET, "", None) else CHANGED
    if isinstance(value, dict):
        return {str(k): scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [scrub(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, models.Model):
        return str(value)
    return str(value)


def changes(obj, stored=None) -> dict:
    """{field: {"from": old, "to": new}} for each field an edit of `obj` (not yet saved) changes
    compared with its row in the database (or `stored`); a secret field gives CHANGED instead
    of its values. {} for a new object."""
    if obj.pk is None:
        return {}
    if stored is None:
        stored = type(obj)._default_manager.filter(pk=obj.pk).first()
        if stored is None:
            return {}
    diff = {}
    for field in obj._meta.concrete_fields:
        if field.primary_key or field.name in NOT_EDITS:
            continue
        old, new = field.value_from_object(stored), field.value_from_object(obj)
        if old == new:
            continue
        if isinstance(field, EncryptedTextField) or SECRET_NAME.search(field.name):
            diff[field.name] = CHANGED
        elif field.is_relation:
            diff[field.name] = {"from": _related_name(field, old), "to": _related_name(field, new)}
        else:
            diff[field.name] = {"from": scrub(old), "to": scrub(new)}
    return diff


def _related_name(field, pk):
    if pk is None:
        return None
    target = field.related_model._default_manager.filter(pk=pk).first()
    return str(target) if target is not None else pk


def created_fields(obj, fields) -> dict:
    """What a new object was created with (the `fields` named); a secret only says SET."""
    values = {}
    for name in fields:
        field = obj._meta.get_field(name)
        value = field.value_from_object(obj)
        if isinstance(field, EncryptedTextField) or SECRET_NAME.search(name):
            values[name] = SET if value else ""
        elif field.is_relation:
            values[name] = _related_name(field, value)
        else:
            values[name] = scrub(value)
    return values


def save_recorded(obj, kind: str, fields, extra_changes: dict | None = None):
    """Save `obj` and record "<kind>.created" with its `fields`, or "<kind>.updated" with what
    changed (nothing recorded for a save that changed nothing)."""
    created = obj.pk is None
    diff = {} if created else changes(obj)
    diff.update(extra_changes or {})
    obj.save()
    if created:
        record(f"{kind}.created", obj, details=created_fields(obj, fields))
    elif diff:
        record(f"{kind}.updated", obj, details={"changed": diff})
    return obj


PRUNE_BATCH = 5000  # rows per DELETE, so pruning a long backlog never locks the table for long


def prune_expired(days: int | None = None, now: datetime | None = None) -> int:
    """Delete the entries older than `days` (GITOPS_UI_AUDIT_RETENTION_DAYS by default; 0 keeps
    everything) and record how many went, so the log itself says why older entries are gone.
    Returns how many were deleted. Run hourly by the reconciler and by `manage.py prune_audit`."""
    from django.conf import settings
    from django.utils import timezone

    days = settings.GITOPS_UI_AUDIT_RETENTION_DAYS if days is None else days
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    expired = AuditEntry.objects.filter(at__lt=cutoff)
    deleted = 0
    while batch := list(expired.values_list("pk", flat=True)[:PRUNE_BATCH]):
        deleted += AuditEntry.objects.filter(pk__in=batch).delete()[0]
    if deleted:
        record("audit.pruned", None, object_type="audit", object_name="audit log",
               details={"deleted": deleted, "older_than": cutoff, "retention_days": days})
    return deleted
