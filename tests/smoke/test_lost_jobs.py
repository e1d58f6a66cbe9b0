"""A sync whose queued job vanished from Redis (a crash before the append-only file was written,
a flushed Redis) is queued again by the reaper, not left Pending forever nor silently dropped;
only a request too old to still be meant is failed. Real PostgreSQL and Redis."""
from datetime import timedelta

import django_rq
import pytest
from django.utils import timezone

from apps.applications import services
from apps.applications.models import Application, Operation, Project
from apps.clusters.models import Cluster
from apps.repositories.models import Repository


@pytest.fixture
def app(transactional_db):  # jobs are queued on commit
    project, _ = Project.objects.get_or_create(name="default")
    return Application.objects.create(
        name="lost-jobs", project=project, namespace="lost-jobs",
        repository=Repository.objects.create(url="http://127.0.0.1:9/lost-jobs.git"),
        cluster=Cluster.objects.create(name="lost-jobs", server="https://127.0.0.1:9", token="t"))


def lost_sync(app, minutes_ago: int) -> Operation:
    """A sync requested `minutes_ago`, whose job Redis no longer has."""
    op = services.request_sync(app)
    queue = django_rq.get_queue("sync")
    queue.fetch_job(op.job_id).delete()
    assert op.job_id not in queue.job_ids
    Operation.objects.filter(pk=op.pk).update(
        created_at=timezone.now() - timedelta(minutes=minutes_ago))
    return op


def test_a_recent_sync_whose_job_vanished_is_queued_again(app):
    op = lost_sync(app, minutes_ago=3)
    assert services.reap_stale_operations() == 0
    op.refresh_from_db()
    assert op.phase == "Pending"
    queue = django_rq.get_queue("sync")
    assert op.job_id in queue.job_ids
    assert queue.fetch_job(op.job_id).args == (op.pk,)
    assert services.reap_stale_operations() == 0  # queued once: still waiting, left alone
    assert queue.job_ids.count(op.job_id) == 1
    queue.fetch_job(op.job_id).delete()


def test_an_old_sync_whose_job_vanished_is_failed_with_the_reason(app):
    op = lost_sync(app, minutes_ago=11)
    assert services.reap_stale_operations() == 1
    op.refresh_from_db()
    assert op.phase == "Error" and "job for this operation was lost" in op.message
    assert op.job_id not in django_rq.get_queue("sync").job_ids
