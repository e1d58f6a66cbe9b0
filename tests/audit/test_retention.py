"""Audit log retention: entries older than GITOPS_UI_AUDIT_RETENTION_DAYS are pruned by the
reconciler's periodic task and by `manage.py prune_audit`, through the same service function;
0 keeps everything. The pruning itself leaves one entry saying how many went."""
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from apps.audit import services as audit
from apps.audit.models import AuditEntry
from apps.core.reconciler import periodic_tasks

pytestmark = pytest.mark.django_db


def entry_aged(days: float, action: str = "application.sync") -> AuditEntry:
    entry = audit.record(action, None, object_type="application", object_name=f"{days}d",
                         actor="webhook")
    AuditEntry.objects.filter(pk=entry.pk).update(at=timezone.now() - timedelta(days=days))
    return entry


def names() -> set[str]:
    return set(AuditEntry.objects.exclude(action="audit.pruned")
               .values_list("object_name", flat=True))


@pytest.mark.django_db(transaction=True)  # the task closes its database connection
@override_settings(GITOPS_UI_AUDIT_RETENTION_DAYS=30)
def test_the_reconcilers_task_deletes_entries_older_than_the_retention():
    for days in (400, 31, 29, 0):
        entry_aged(days)
    task = next(t for t in periodic_tasks() if t.name == "prune-audit-log")
    task.run()
    assert names() == {"29d", "0d"}
    pruned = AuditEntry.objects.get(action="audit.pruned")
    assert pruned.details["deleted"] == 2 and pruned.details["retention_days"] == 30
    assert pruned.actor_name == "system"

    task.run()  # nothing more to delete: no second entry about it
    assert AuditEntry.objects.filter(action="audit.pruned").count() == 1


@override_settings(GITOPS_UI_AUDIT_RETENTION_DAYS=0)
def test_zero_days_keeps_every_entry():
    entry_aged(4000)
    assert audit.prune_expired() == 0
    out = StringIO()
    call_command("prune_audit", stdout=out)
    assert "every entry is kept" in out.getvalue()
    assert names() == {"4000d"}


@override_settings(GITOPS_UI_AUDIT_RETENTION_DAYS=90)
def test_the_command_prunes_with_the_setting_or_the_days_given(monkeypatch):
    for days in (120, 60, 5):
        entry_aged(days)
    monkeypatch.setattr(audit, "PRUNE_BATCH", 1)  # a backlog is deleted in several batches
    out = StringIO()
    call_command("prune_audit", stdout=out)
    assert out.getvalue().strip() == "deleted 1 entry older than 90 days"
    assert names() == {"60d", "5d"}

    call_command("prune_audit", "--days", "7", stdout=out)
    assert names() == {"5d"}
    assert AuditEntry.objects.filter(action="audit.pruned", actor_name="manage.py").count() == 2

    with pytest.raises(CommandError, match="--days must be 0"):
        call_command("prune_audit", "--days", "-1")
