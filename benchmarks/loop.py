"""The build loop on the local stack and the platform's launcher, seeded and walked step by step:
timed by the "pipeline" measurement (benchmarks/pipeline.py), shown by `make demo`
(benchmarks/demo.py).

A service repository (a Dockerfile FROM the registry's busybox base, one RUN, one COPY) with tag
rules build-* and push-*, a deploy repository (a kustomization and a Deployment of its image),
the registry, the cluster, an application with an image update policy. A tag is pushed to the
git server and GitLab's Tag Push Hook POSTed as GitLab would; the launcher's build worker builds
(and pushes) with buildah, the engine writes the new tag back into the deploy repository and
syncs it, KWOK runs the new pods.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import time
import uuid
from datetime import timezone
from pathlib import Path

import requests

from . import workload
from .system import log

PROJECT = "team"
SEED_VERSION = "0.1.0"  # what the deploy repository runs before the loop
DOCKERFILE = """FROM {base}
RUN mkdir -p /app && echo "built by buildah for GitOps UI" > /app/built-by
COPY app.txt /app/app.txt
CMD ["cat", "/app/app.txt"]
"""
KUSTOMIZATION = """resources:
- web.yaml
images:
- name: {image}
  newTag: {tag}
"""
DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: web
        image: {image}:{tag}
        ports:
        - containerPort: 8080
"""


def utc_seconds(moment) -> float:
    """A datetime (rq's may be naive UTC) as a Unix timestamp."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def wait_for(what: str, probe, timeout: float, every: float = 0.05):
    """probe()'s first truthy value, asked every `every` s; TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout:.0f} s")
        time.sleep(every)


class Loop:
    """Everything the loop needs, seeded on the stack and in the database; the steps to walk it."""

    def __init__(self, system, name: str = "hello", *, replicas: int = 2, say=log):
        from apps.engine.cluster import Cluster

        self.system, self.name, self.replicas, self.say = system, name, replicas, say
        self.git = system.get("git")
        self.buildah = system.get("buildah")  # the registry, and its busybox base image
        self.registry = system.get("registry")
        self.kube = system.get("kube")
        work = system.stack.workdir / "loop"
        self.service = workload.BenchRepo(self.git, f"svc/{name}", work)
        self.deploy = workload.BenchRepo(self.git, f"deploy/{name}", work)
        self.engine = Cluster.from_kubeconfig(self.kube.kubeconfig_text(), name="loop")
        self.secret = secrets.token_urlsafe(24)  # the service repository's webhook secret
        self.image = f"{self.registry.host}/{PROJECT}/{name}"  # the rules' template makes it
        self.namespace = name

    # --- seeding ----------------------------------------------------------------------------
    def seed(self, timeout: float = 300) -> None:
        from apps.applications import services as applications
        from apps.applications.models import ImageUpdater, Project
        from apps.builds import services as builds
        from apps.builds.models import TagRule
        from apps.clusters import services as clusters
        from apps.clusters.models import Cluster
        from apps.registries import services as registries
        from apps.registries.models import Registry
        from apps.repositories import services as repositories
        from apps.repositories.models import Repository

        self.service_sha = self.commit_service("hello from the first commit\n", "the service")
        self.say(f"service repository {self.service.url}: Dockerfile (FROM {self.buildah.base_image}, "
                 f"one RUN, one COPY) and app.txt at {self.service_sha[:8]}")
        self.copy_base(f"{PROJECT}/{self.name}:{SEED_VERSION}")
        folder = self.name
        self.write(self.deploy, {
            f"{folder}/kustomization.yaml": KUSTOMIZATION.format(image=self.image, tag=SEED_VERSION),
            f"{folder}/web.yaml": DEPLOYMENT.format(image=self.image, tag=SEED_VERSION,
                                                   replicas=self.replicas)})
        deploy_sha = self.deploy.commit_and_push("deploy web")
        self.say(f"deploy repository {self.deploy.url}: {folder}/kustomization.yaml and web.yaml "
                 f"(Deployment web × {self.replicas}, image {self.image}:{SEED_VERSION})")

        project, _ = Project.objects.get_or_create(name=PROJECT)
        registry = registries.save_registry(Registry(
            name="local", url=self.registry.url, username=self.registry.username,
            password=self.registry.password))
        service = repositories.save_repository(Repository(
            url=self.service.url, username=self.git.username, password=self.git.password,
            webhook_secret=self.secret))
        rules = {action: builds.save_tag_rule(TagRule(
            repository=service, project=project, registry=registry, action=action,
            image_name=self.name)) for action in (TagRule.Action.BUILD, TagRule.Action.PUSH)}
        deploy = repositories.save_repository(Repository(
            url=self.deploy.url, username=self.git.username, password=self.git.password))
        # The bench's record of this control plane when there is one: a second record would
        # give the engine a second watch cache of the same cluster.
        cluster = Cluster.objects.filter(name="bench").first() or clusters.save_cluster(
            Cluster(name="local", auth=Cluster.Auth.KUBECONFIG,
                    kubeconfig=self.kube.kubeconfig_text()))
        self.say(f"registry 'local' ({self.registry.url}), cluster '{cluster.name}' (the local "
                 f"control plane, KWOK nodes), tag rules "
                 f"{', '.join(str(r) for r in rules.values())}")
        app = applications.create_application(
            name=self.name, project=project, repository=deploy, cluster=cluster,
            namespace=self.namespace, path=folder, revision="HEAD", automated=True, prune=True,
            sync_options=["CreateNamespace=true"])
        ImageUpdater.objects.create(application=app, image=self.image, constraint="^1.0")
        self.say(f"application {self.name} (automated sync; image update policy: {self.image} "
                 "^1.0, written back into the kustomization)")
        self.wait_synced(deploy_sha, timeout)
        pods = self.wait_pods(f"{self.image}:{SEED_VERSION}", timeout)
        self.say(f"{self.name} is Synced and Healthy: {len(pods)} pods run {SEED_VERSION}")

    def write(self, repo: workload.BenchRepo, files: dict[str, str]) -> None:
        for path, text in files.items():
            target = repo.work / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)

    def commit_service(self, app_text: str, message: str) -> str:
        self.write(self.service, {"Dockerfile": DOCKERFILE.format(base=self.buildah.base_image),
                                  "app.txt": app_text})
        return self.service.commit_and_push(message)

    def copy_base(self, dest: str) -> None:
        """The registry's busybox base under another name (what the deploy repo runs first)."""
        creds = f"{self.registry.username}:{self.registry.password}"
        result = subprocess.run(
            ["skopeo", "copy", "--quiet", "--src-creds", creds, "--dest-creds", creds,
             "--src-tls-verify=false", "--dest-tls-verify=false",
             f"docker://{self.buildah.base_image}", f"docker://{self.registry.host}/{dest}"],
            capture_output=True, text=True, timeout=120)
        if result.returncode:
            raise RuntimeError("skopeo copy failed: "
                               + result.stderr.replace(self.registry.password, "***")[-1000:])

    # --- the steps --------------------------------------------------------------------------
    def push_tag(self, tag: str, sha: str) -> str:
        """An annotated tag pushed to the git server; the tag object's id (the hook's `after`)."""
        self.service._git("tag", "-a", "-m", tag, tag, sha)
        self.service._git("push", "-q", "origin", f"refs/tags/{tag}")
        return self.service._git("rev-parse", f"refs/tags/{tag}")

    def post_tag_hook(self, tag: str, sha: str, after: str) -> tuple[float, float, list[int]]:
        """GitLab's Tag Push Hook for `tag` at `sha`, POSTed to the launcher: (wall time of the
        POST, seconds to the answer, the builds it started)."""
        body = {"object_kind": "tag_push", "event_name": "tag_push", "ref": f"refs/tags/{tag}",
                "before": "0" * 40, "after": after, "checkout_sha": sha, "user_username": "demo",
                "project_id": 1,
                "project": {"id": 1, "path_with_namespace": f"svc/{self.name}",
                            "git_http_url": self.service.url, "default_branch": "main"},
                "commits": [], "total_commits_count": 0}
        headers = {"X-Gitlab-Event": "Tag Push Hook", "X-Gitlab-Token": self.secret,
                   "X-Gitlab-Event-UUID": str(uuid.uuid4())}
        posted = time.time()
        answer = requests.post(f"{self.system.base_url}/api/webhook/git", json=body,
                               headers=headers, timeout=60)
        answered = time.time() - posted
        if answer.status_code != 202 or not answer.json().get("builds"):
            raise RuntimeError(f"the tag webhook answered {answer.status_code}: {answer.text[:300]}")
        return posted, answered, answer.json()["builds"]

    def build(self, pk: int):
        from apps.builds.models import Build

        return Build.objects.get(pk=pk)

    def wait_build(self, pk: int, timeout: float = 600, started: bool = False):
        """The build once running or later (started=True), or once finished."""
        from apps.builds.models import Build

        def probe():
            build = Build.objects.get(pk=pk)
            return build if (build.status != Build.Status.QUEUED if started else build.finished) \
                else None
        return wait_for(f"build #{pk} {'started' if started else 'finished'}", probe, timeout,
                        every=0.02 if started else 0.1)

    def write_back_commit(self, tag: str) -> str | None:
        """The deploy repository's commit that wrote `tag` (None until there is one)."""
        from apps.applications.models import ImageUpdater

        row = ImageUpdater.objects.filter(application__name=self.name).values(
            "last_status", "last_tag", "last_commit").first()
        return row["last_commit"] if row and row["last_tag"] == tag and row["last_commit"] else None

    def synced(self, sha: str) -> bool:
        from apps.applications.models import Application

        return Application.objects.filter(name=self.name, synced_sha=sha, sync_status="Synced",
                                          health_status="Healthy").exists()

    def wait_synced(self, sha: str, timeout: float) -> None:
        wait_for(f"{self.name} Synced and Healthy at {sha[:8]}", lambda: self.synced(sha),
                 timeout, every=0.2)

    def running_pods(self, image: str) -> list[dict]:
        """The Deployment's pods Running `image` (a name:tag; a pinned @digest after it counts)."""
        pods, _ = self.engine.list(self.engine.resource_for("v1", "Pod"), self.namespace,
                                   label_selector="app=web")
        return [p for p in pods if not p["metadata"].get("deletionTimestamp")
                and p.get("status", {}).get("phase") == "Running"
                and all(c["image"].split("@")[0] == image for c in p["spec"]["containers"])]

    def wait_pods(self, image: str, timeout: float) -> list[dict]:
        return wait_for(f"{self.replicas} pods running {image}",
                        lambda: (lambda pods: pods if len(pods) >= self.replicas else None)(
                            self.running_pods(image)), timeout, every=0.1)

    # --- a bare buildah, as the product's wrapper runs it (apps/builds/buildah.py) ----------
    def bare_build_and_push(self, root: Path, context: Path, reference: str) -> float:
        """`buildah bud` + `buildah push` of `context` to `reference`, the same flags as the
        build worker's (vfs, chroot, an auth file, no TLS on the local registry); seconds."""
        for name in ("storage", "run", "tmp"):
            (root / name).mkdir(parents=True, exist_ok=True)
        auth = root / "tmp" / "auth.json"
        token = base64.b64encode(f"{self.registry.username}:{self.registry.password}".encode())
        auth.write_text(json.dumps({"auths": {self.registry.host: {"auth": token.decode()}}}))
        auth.chmod(0o600)
        base = ["buildah", "--storage-driver", "vfs", "--root", str(root / "storage"),
                "--runroot", str(root / "run")]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root),
               "TMPDIR": str(root / "tmp"), "BUILDAH_ISOLATION": "chroot", "LC_ALL": "C.UTF-8"}
        flags = ["--authfile", str(auth), "--tls-verify=false"]
        local = f"localhost/bare/{self.name}:{uuid.uuid4().hex[:12]}"
        started = time.perf_counter()
        for argv in (["bud", "--isolation", "chroot", "-f", str(context / "Dockerfile"),
                      "-t", local, "-t", reference, *flags, str(context)],
                     ["push", *flags, "--digestfile", str(root / "tmp" / "digest"), local,
                      f"docker://{reference}"]):
            result = subprocess.run(base + argv, env=env, cwd=root, capture_output=True,
                                    text=True, timeout=900)
            if result.returncode:
                raise RuntimeError(f"bare buildah {argv[0]} failed: {result.stderr[-1500:]}")
        return time.perf_counter() - started

    def export(self, sha: str, dest: Path) -> Path:
        """The service repository's tree at `sha` in `dest` (what the build worker exports)."""
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", sha], cwd=self.service.work,
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        return dest
