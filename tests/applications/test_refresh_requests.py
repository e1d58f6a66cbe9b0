"""Refresh requests are merged, never lost: one asked for while the app's refresh runs is
queued again when that refresh ends, even though its own job was picked up meanwhile."""
import time

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


def waiting(background) -> tuple[list, set]:
    """The background jobs queued and the apps whose refresh waits in the set."""
    names = {n.decode() for n in redis_connection().smembers(queueing.CHANGED_APPS)}
    return [job.func_name for job in background.jobs], names


def test_a_watch_event_during_a_refresh_is_queued_again_when_the_refresh_ends(
        app, background, monkeypatch):
    def refresh_during_which_the_cluster_changes(a, **_):
        # A watch event: its job is queued, then picked up by a free thread while this
        # refresh still runs, so it is only noted as "again".
        queueing.schedule_refresh_by_name(a.name, background=True)
        [job] = background.jobs
        background.remove(job)
        job.perform()

    monkeypatch.setattr(refreshing, "refresh_now", refresh_during_which_the_cluster_changes)
    jobs.refresh(app.name)

    # Queued once more, without a git call.
    assert waiting(background) == (["apps.applications.jobs.refresh_changed"], {app.name})


def test_a_burst_of_watch_events_queues_one_refresh_and_a_change_after_it_started_another(
        app, background, monkeypatch):
    for _ in range(20):  # a sync's objects created, a rollout's status writes
        queueing.schedule_refresh_by_name(app.name, background=True)
    assert waiting(background) == (["apps.applications.jobs.refresh_changed"], {app.name})

    [job] = background.jobs
    background.remove(job)
    started = []

    def refresh_now(a, **kwargs):
        refreshing.forget_refresh_requests(a.name)  # as the real one does first
        started.append((a.name, kwargs))
        queueing.compared_cluster(a.name, began)  # as reconcile.refresh does once it saved

    monkeypatch.setattr(refreshing, "refresh_now", refresh_now)
    began = time.monotonic()
    job.perform()
    assert started == [(app.name, {"cluster_change": True, "run_operation": False})]
    assert waiting(background) == ([], set())
    queueing.schedule_refresh_by_name(app.name, background=True)  # a change after it read
    assert waiting(background) == (["apps.applications.jobs.refresh_changed"], {app.name})


def test_changes_a_refresh_compared_after_they_were_seen_are_not_refreshed_again(
        app, background, monkeypatch):
    # A sync writes the app's objects: the watch asks for a refresh; the refresh right after
    # the sync begins once they are in the cache, and compares them.
    queueing.schedule_refresh_by_name(app.name, background=True)
    queueing.compared_cluster(app.name, time.monotonic())
    started = []
    monkeypatch.setattr(refreshing, "refresh_now", lambda a, **_: started.append(a.name))
    [job] = background.jobs
    background.remove(job)
    job.perform()
    assert started == [] and waiting(background) == ([], set())

    # A change seen after that refresh began is refreshed.
    time.sleep(0.01)
    queueing.schedule_refresh_by_name(app.name, background=True)
    [job] = background.jobs
    background.remove(job)
    job.perform()
    assert started == [app.name]


def test_background_refreshes_are_taken_in_batches_by_as_many_jobs_as_needed(background):
    names = [f"batched-{i:02d}" for i in range(queueing.CHANGED_BATCH * 2 + 1)]
    for name in names:
        queueing.schedule_refresh_by_name(name, background=True)
    assert waiting(background) == (["apps.applications.jobs.refresh_changed"], set(names))
    taken = []
    while background.jobs:  # each job takes a batch and queues one for what is left
        [job] = background.jobs
        background.remove(job)
        taken.append(queueing.take_changed_apps())
    assert [len(batch) for batch in taken] == [queueing.CHANGED_BATCH] * 2 + [1]
    assert sorted(sum(taken, [])) == names
