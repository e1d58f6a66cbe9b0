"""Refresh requests are merged, never lost: one asked for while the app's refresh runs is
queued again when that refresh ends, even though its own job was picked up meanwhile."""
import pytest

from apps.applications import jobs, queueing, refreshing
from apps.applications.models import Project
from apps.clusters.models import Cluster
from apps.core.queues import job_queue, redis_connection
from apps.repositories.models import Repository

from .factories import KUBECONFIG, REPO_URL, make_app

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def background():
    queue = job_queue(queueing.BACKGROUND_QUEUE)
    queue.empty()
    for key in redis_connection().scan_iter("gitops-ui:*refresh-queued:*"):
        redis_connection().delete(key)
    queueing.forget_local_merges()
    yield queue
    queue.empty()


@pytest.fixture
def app():
    return make_app("merged", Project.objects.create(name="p-merged"),
                    Repository.objects.create(url=REPO_URL),
                    Cluster.objects.create(name="c-merged", auth=Cluster.Auth.KUBECONFIG,
                                           kubeconfig=KUBECONFIG))


def test_a_watch_event_during_a_refresh_is_queued_again_when_the_refresh_ends(
        app, background, monkeypatch):
    def refresh_during_which_the_cluster_changes(a, **_):
        # A watch event: its job is queued, then picked up by a free thread while this
        # refresh still runs, so it is only noted as "again".
        queueing.schedule_refresh_by_name(a.name, background=True)
        [job] = background.jobs
        background.remove(job)
        jobs.refresh(*job.args)

    monkeypatch.setattr(refreshing, "refresh_now", refresh_during_which_the_cluster_changes)
    jobs.refresh(app.name)

    queued = [job.args for job in background.jobs]
    assert queued == [(app.name, False, True)]  # a refresh without a git call, queued once


def test_a_burst_of_watch_events_queues_one_refresh_and_a_change_after_it_started_another(
        app, background, monkeypatch):
    for _ in range(20):  # a sync's objects created, a rollout's status writes
        queueing.schedule_refresh_by_name(app.name, background=True)
    [job] = background.jobs
    assert job.args == (app.name, False, True)

    background.remove(job)
    started = []

    def refresh_now(a, **kwargs):
        refreshing.forget_refresh_requests(a.name)  # as the real one does first
        started.append(a.name)

    monkeypatch.setattr(refreshing, "refresh_now", refresh_now)
    jobs.refresh(*job.args)
    assert started == [app.name]
    queueing.schedule_refresh_by_name(app.name, background=True)  # a change after it read
    assert [j.args for j in background.jobs] == [(app.name, False, True)]
