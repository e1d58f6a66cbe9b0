"""Rows for API, admin and command tests, made directly through the ORM (no cluster needed)."""
from types import SimpleNamespace

import django_rq
import pytest

from apps.applications.models import Application, HistoryEntry, Project
from apps.clusters.models import Cluster
from apps.repositories.models import Repository

CLUSTER_TOKEN = "tok-3c1d9f0a-never-shown"
KUBECONFIG = "apiVersion: v1\nkind: Config\n# kubeconfig-b7e2-never-shown\n"
REPO_PASSWORD = "pw-5a8e21d4-never-shown"
WEBHOOK_SECRET = "hook-91f07c3b-never-shown"
SECRETS = (CLUSTER_TOKEN, "kubeconfig-b7e2-never-shown", REPO_PASSWORD, WEBHOOK_SECRET)
REPO_URL = "https://gitlab.example.com/team/deploy.git"


def make_app(name: str, project: Project, repo: Repository, cluster: Cluster, **fields) -> Application:
    return Application.objects.create(name=name, project=project, repository=repo,
                                      cluster=cluster, namespace=fields.pop("namespace", name),
                                      **fields)


def make_history(app: Application, sha: str = "a" * 40) -> HistoryEntry:
    return HistoryEntry.objects.create(application=app, sha=sha, revision="main",
                                       deployed_by="admin")


@pytest.fixture
def world(db):
    cluster = Cluster.objects.create(name="prod", server="https://127.0.0.1:1",
                                     token=CLUSTER_TOKEN, kubeconfig=KUBECONFIG)
    repo = Repository.objects.create(url=REPO_URL, username="deploy", password=REPO_PASSWORD,
                                     webhook_secret=WEBHOOK_SECRET)
    project = Project.objects.create(name="default")
    app = make_app("shop", project, repo, cluster, sync_status="Synced", health_status="Healthy")
    return SimpleNamespace(cluster=cluster, repo=repo, project=project, app=app)


@pytest.fixture
def sync_queue():
    """The "sync" RQ queue, empty, with no refresh marked as already queued."""
    queue = django_rq.get_queue("sync")
    connection = django_rq.get_connection("sync")

    def clear():
        queue.empty()
        for key in connection.scan_iter("gitops-ui:refresh-queued:*"):
            connection.delete(key)

    clear()
    yield queue
    clear()
