"""Fixtures of the application tests: rows made through the ORM, and a clean sync queue."""
from types import SimpleNamespace

import django_rq
import pytest

from apps.clusters.models import Cluster
from apps.applications.models import Project
from apps.repositories.models import Repository

from .factories import CLUSTER_TOKEN, KUBECONFIG, REPO_PASSWORD, REPO_URL, WEBHOOK_SECRET, make_app


@pytest.fixture
def world(db):
    cluster = Cluster.objects.create(name="prod", server="https://127.0.0.1:1",
                                     token=CLUSTER_TOKEN, kubeconfig=KUBECONFIG)
    repo = Repository.objects.create(url=REPO_URL, username="deploy", password=REPO_PASSWORD,
                                     webhook_secret=WEBHOOK_SECRET)
    project, _ = Project.objects.get_or_create(name="default")
    app = make_app("shop", project, repo, cluster, sync_status="Synced", health_status="Healthy")
    return SimpleNamespace(cluster=cluster, repo=repo, project=project, app=app)


@pytest.fixture
def sync_queue():
    """The "sync" RQ queue, empty, with no refresh marked as already queued."""
    queue = django_rq.get_queue("sync")
    connection = django_rq.get_connection("sync")

    def clear():
        queue.empty()
        django_rq.get_queue("background").empty()  # watch-event and periodic refreshes
        for key in connection.scan_iter("gitops-ui:*-queued:*"):
            connection.delete(key)

    clear()
    yield queue
    clear()


@pytest.fixture(scope="module", autouse=True)
def _stop_cluster_watches():
    """Watch caches a module's tests started end with the module, so their threads do not call
    into later tests (which may have no database)."""
    yield
    from apps.clusters import services as clusters

    clusters.stop_all()
