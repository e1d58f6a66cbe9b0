"""Applications on the real stack, for the tests of every folder (a plugin: tests/conftest.py).

Fixtures: `name` (unique per test, usable as an app, repository and namespace name), `repo` (a
deploy repository on the local git server, with a working clone), `cluster_record` (the test
control plane as a Cluster row), `make_app` (an Application of a repo on that cluster). Helpers:
read a live object, sync and wait, refresh, run the engine worker until its queues are empty.
"""
import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.db import connection

from apps.applications import operations, refreshing, services
from apps.applications.models import Application, Operation, Project
from apps.clusters import services as clusters
from apps.clusters.models import Cluster
from apps.repositories.models import Repository
from gitops_ui.env import BASE_DIR

unique_ids = itertools.count()


class DeployRepo:
    """A deploy repository on the local git server, with a working clone to commit from."""

    def __init__(self, git_server, name, workdir: Path):
        self.url = git_server.create_repo(name)
        self.auth_url = git_server.auth_url(name)
        self.work = workdir / name
        self._git("clone", "-q", self.auth_url, str(self.work), cwd=workdir)

    def _git(self, *args, cwd=None):
        env = {**os.environ, "GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
               "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "dev@example.com"}
        return subprocess.run(["git", *args], cwd=cwd or self.work, env=env, check=True,
                              capture_output=True, text=True).stdout.strip()

    def push(self, files: dict, delete=(), message="change") -> str:
        self._git("pull", "-q", "--rebase", "origin", "main") if self._has_commits() else None
        for path, content in files.items():
            target = self.work / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if not isinstance(content, str):
                content = yaml.safe_dump_all(content if isinstance(content, list) else [content])
            target.write_text(content)
        for path in delete:
            (self.work / path).unlink()
        self._git("add", "-A")
        self._git("commit", "-q", "-m", message)
        self._git("push", "-q", "origin", "HEAD:main")
        return self._git("rev-parse", "HEAD")

    def _has_commits(self) -> bool:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=self.work,
                              capture_output=True).returncode == 0


@pytest.fixture
def name(request):
    return f"a{next(unique_ids)}-{request.node.name[5:25]}".lower().replace("_", "-").strip("-")


@pytest.fixture
def repo(git_server, tmp_path, name) -> DeployRepo:
    return DeployRepo(git_server, name, tmp_path)


@pytest.fixture
def cluster_record(kube) -> Cluster:
    return Cluster.objects.create(name=f"local-{next(unique_ids)}", auth=Cluster.Auth.KUBECONFIG,
                                  kubeconfig=kube.kubeconfig_text())


@pytest.fixture
def make_app(git_server, cluster_record, name):
    def make(repo: DeployRepo, **fields) -> Application:
        repository, _ = Repository.objects.get_or_create(
            url=repo.url, defaults={"username": git_server.username, "password": git_server.password})
        project, _ = Project.objects.get_or_create(name="default")
        fields.setdefault("sync_options", ["CreateNamespace=true"])
        return Application.objects.create(name=name, project=project, repository=repository,
                                          cluster=cluster_record, namespace=name, **fields)
    return make


def live(app, api_version, kind, obj_name):
    engine = clusters.runtime(app.cluster).cluster
    return engine.get(engine.resource_for(api_version, kind), app.namespace, obj_name)


def sync_and_wait(app, **kwargs) -> Operation:
    op = services.request_sync(app, enqueue=False, **kwargs)
    return operations.run(op.pk)


def refreshed(app) -> Application:
    refreshing.refresh_now(Application.objects.get(pk=app.pk))
    return Application.objects.get(pk=app.pk)


def run_worker():
    """The engine worker `make run` starts, against the test database, until its queues are
    empty and their jobs done."""
    db = connection.settings_dict
    url = f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    result = subprocess.run(
        [sys.executable, "manage.py", "engine", "--burst"],
        cwd=BASE_DIR, capture_output=True, text=True, timeout=300,
        env={**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "gitops_ui.settings"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stderr


def read_only_token(engine, namespace) -> str:
    """A service account that may read ConfigMaps everywhere but write nothing."""
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    engine.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts",
                   body={"metadata": {"name": "viewer"}})
    engine.request("POST", f"{rbac}/clusterroles", body={
        "metadata": {"name": f"{namespace}-viewer"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]})
    engine.request("POST", f"{rbac}/clusterrolebindings", body={
        "metadata": {"name": f"{namespace}-viewer"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": f"{namespace}-viewer"},
        "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": namespace}]})
    answer = engine.request_json("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/viewer/token",
                                 body={"spec": {"expirationSeconds": 3600}})
    return answer["status"]["token"]
