"""Fixtures of the build tests: a service repository on the stack's git server (a Dockerfile
FROM the stack's busybox base image), its Repository record with a webhook secret, the stack's
registry as a Registry record, tag rules, the builds queue, and a real build worker."""
from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import django_rq
import pytest
from django.db import connection

from apps.applications.models import Project, ProjectMember
from apps.builds.models import TagRule
from apps.registries.models import Registry
from apps.repositories.models import Repository
from gitops_ui.env import BASE_DIR
from tests.gitcli import git

WEBHOOK_SECRET = "build-hook-secret-5e1"
_names = itertools.count()


class ServiceRepo:
    """A working clone of a repository on the git server: write files, commit, push, tag."""

    def __init__(self, git_server, tmp_path, name: str):
        self.name = name
        self.url = git_server.create_repo(name)
        self.auth_url = git_server.auth_url(name)
        self.work = tmp_path / name.replace("/", "-")
        git("init", "--quiet", "--initial-branch=main", self.work)

    def commit(self, files: dict[str, str], message: str = "change") -> str:
        for path, text in files.items():
            target = self.work / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        git("add", "-A", cwd=self.work)
        git("commit", "--quiet", "-m", message, cwd=self.work)
        git("push", "--quiet", self.auth_url, "HEAD:main", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work).stdout.strip()

    def tag(self, name: str, sha: str) -> None:
        git("tag", "-a", "-m", name, name, sha, cwd=self.work)  # annotated: `after` is not the commit
        git("push", "--quiet", self.auth_url, f"refs/tags/{name}", cwd=self.work)


@pytest.fixture
def service(git_server, tmp_path):
    return ServiceRepo(git_server, tmp_path, f"svc/app{os.getpid() % 1000}x{next(_names)}")


def dockerfile(buildah, *steps: str) -> str:
    return "\n".join([f"FROM {buildah.base_image}", *steps]) + "\n"


@pytest.fixture
def world(db, git_server, registry, service, django_user_model):
    project, _ = Project.objects.get_or_create(name="team")
    repo = Repository.objects.create(url=service.url, username=git_server.username,
                                     password=git_server.password, webhook_secret=WEBHOOK_SECRET)
    reg = Registry.objects.create(name="local", url=registry.url, username=registry.username,
                                  password=registry.password)
    rules = {action: TagRule.objects.create(repository=repo, project=project, registry=reg,
                                            action=action, image_name=f"img{repo.pk}")
             for action in ("build", "push")}
    users = {}
    for role in ("viewer", "operator"):
        users[role] = django_user_model.objects.create_user(f"{role}{repo.pk}", password="pw")
        ProjectMember.objects.create(project=project, user=users[role], role=role)
    users["outsider"] = django_user_model.objects.create_user(f"outsider{repo.pk}", password="pw")
    return SimpleNamespace(project=project, repo=repo, registry=reg, rules=rules, users=users,
                           service=service)


@pytest.fixture
def stack_cluster(kube):
    """A Cluster record of the stack's control plane (KWOK runs the Pods)."""
    from apps.clusters.models import Cluster

    return Cluster.objects.create(name=f"local-{os.getpid() % 1000}x{next(_names)}",
                                  auth=Cluster.Auth.KUBECONFIG, kubeconfig=kube.kubeconfig_text())


@pytest.fixture
def deploy_repo(git_server, tmp_path):
    """A deploy repository on the git server (manifests committed with .commit)."""
    return ServiceRepo(git_server, tmp_path, f"deploy/d{os.getpid() % 1000}x{next(_names)}")


@pytest.fixture
def builds_queue():
    queue = django_rq.get_queue("builds")
    queue.empty()
    yield queue
    queue.empty()


def tag_push(service, tag: str, sha: str | None, *, after: str | None = None) -> dict:
    """A GitLab Tag Push Hook body, with the documented fields."""
    return {"object_kind": "tag_push", "event_name": "tag_push", "ref": f"refs/tags/{tag}",
            "before": "0" * 40, "after": after or ("1" * 40 if sha else "0" * 40),
            "checkout_sha": sha, "user_username": "dev", "project_id": 7,
            "project": {"id": 7, "path_with_namespace": service.name,
                        "git_http_url": service.url, "web_url": service.url[:-4],
                        "default_branch": "main"},
            "commits": [], "total_commits_count": 0}


def post_tag_push(client, body, *, token=WEBHOOK_SECRET, delivery=None, **headers):
    headers["HTTP_X_GITLAB_EVENT"] = "Tag Push Hook"
    if token:
        headers["HTTP_X_GITLAB_TOKEN"] = token
    if delivery:
        headers["HTTP_X_GITLAB_EVENT_UUID"] = delivery
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post("/api/webhook/git", data, content_type="application/json", **headers)


def build_jobs(queue) -> list:
    return [job.args for job in queue.get_jobs() if job.func_name == "apps.builds.jobs.run_build"]


def worker_env() -> dict:
    db = connection.settings_dict
    url = f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "gitops_ui.settings"}


def start_build_worker(burst: bool) -> subprocess.Popen:
    """The build worker `make run` starts (a forked process per build), on the test database."""
    argv = ["-q", "--burst", "builds"] if burst else ["-q", "builds"]
    return subprocess.Popen([sys.executable, "-m", "apps.core.worker", *argv], cwd=BASE_DIR,
                            env=worker_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def run_build_worker() -> str:
    """Run the build worker until the builds queue is empty; its output."""
    proc = start_build_worker(burst=True)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    return out
