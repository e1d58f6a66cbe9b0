"""Rows for API, admin and command tests, made directly through the ORM (no cluster needed)."""
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
