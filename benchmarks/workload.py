"""The workload of performance.md: N applications, one folder each in one Git repository, each
with 10 plain manifests (1 Deployment with 1 replica, 1 Service, 8 ConfigMaps) in its own
namespace; automated sync, prune, CreateNamespace=true, revision HEAD."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

CONFIGMAPS = 8


def deployment(name: str) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "main", "image": "nginx:1.27",
                                                           "ports": [{"containerPort": 80}]}]}}}}


def service(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 80}]}}


def configmap(name: str, app: str, revision: str = "0") -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"revision": revision, "app": app, "log-level": "info",
                     "feature-flags": "search=on,checkout=on,recommendations=off"}}


def app_files(app: str, folder: str, revision: str = "0") -> dict[str, dict]:
    """folder/<file> -> manifest: the 10 objects of one application, one file each."""
    files = {f"{folder}/deployment.yaml": deployment("web"), f"{folder}/service.yaml": service("web")}
    for i in range(CONFIGMAPS):
        files[f"{folder}/configmap-{i}.yaml"] = configmap(f"cfg-{i}", app, revision if i == 0 else "0")
    return files


def configmap_files(app: str, folder: str, count: int) -> dict[str, dict]:
    return {f"{folder}/cm-{i:04d}.yaml": configmap(f"cm-{i:04d}", app) for i in range(count)}


class BenchRepo:
    """The deploy repository on the stack's git server, with a working clone to commit from."""

    def __init__(self, git_server, name: str, workdir: Path):
        self.url = git_server.create_repo(name)
        self.auth_url = git_server.auth_url(name)
        self.work = Path(workdir) / name
        self.work.parent.mkdir(parents=True, exist_ok=True)
        self._git("clone", "-q", self.auth_url, str(self.work), cwd=self.work.parent)
        self._git("config", "gc.auto", "0")

    def _git(self, *args, cwd=None) -> str:
        env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
               "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}
        return subprocess.run(["git", *args], cwd=cwd or self.work, env=env, check=True,
                              capture_output=True, text=True).stdout.strip()

    def write(self, files: dict[str, dict]) -> None:
        for path, obj in files.items():
            target = self.work / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(yaml.safe_dump(obj, sort_keys=False))

    def commit_and_push(self, message: str) -> str:
        self._git("add", "-A")
        self._git("commit", "-q", "--allow-empty", "-m", message)
        self._git("push", "-q", "origin", "HEAD:main")
        return self._git("rev-parse", "HEAD")


def create_apps(names_and_paths: list[tuple[str, str]], repo: BenchRepo, git_server, kube,
                *, automated: bool = True, schedule: bool = True) -> list:
    """Application rows (and the Repository, Cluster, Project they need), as the API creates
    them: services.create_application saves the row and schedules a refresh in a worker.
    With schedule=False the rows are saved with the ORM only (nothing is queued)."""
    from apps.applications import services
    from apps.applications.models import Application, Project
    from apps.clusters.models import Cluster
    from apps.repositories.models import Repository

    repository, _ = Repository.objects.get_or_create(
        url=repo.url, defaults={"username": git_server.username, "password": git_server.password})
    cluster = Cluster.objects.filter(name="bench").first() or Cluster.objects.create(
        name="bench", auth=Cluster.Auth.KUBECONFIG, kubeconfig=kube.kubeconfig_text())
    project, _ = Project.objects.get_or_create(name="default")
    created = []
    for name, path in names_and_paths:
        fields = dict(name=name, project=project, repository=repository, cluster=cluster,
                      namespace=name, path=path, revision="HEAD", automated=automated,
                      prune=True, sync_options=["CreateNamespace=true"])
        if schedule:
            created.append(services.create_application(**fields))
        else:
            created.append(Application.objects.create(**fields))
    return created
