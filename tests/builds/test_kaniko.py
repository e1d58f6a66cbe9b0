"""The kaniko backend against the stack's real control plane (kube-apiserver, controller-manager,
KWOK nodes): the registry Secret and the Job are created in the build namespace and read back
from the API server, the Job is followed to its end, the Secrets are gone afterwards, a cancel
deletes the Job, a cluster that is down fails the build with its name.

KWOK runs no container: its pod-complete stage marks a Job's pod Succeeded, so the executor
never clones, builds or pushes. The build must then say so, not succeed: the registry has no
image (push) or kaniko reported no digest (build)."""
import base64
import json
import threading
import uuid

import pytest
from django.core.exceptions import ValidationError
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from apps.builds import jobs, services
from apps.builds.models import DEFAULT_EXECUTOR_IMAGE, Build
from apps.clusters.models import Cluster
from tests.localstack.process import free_port
from tests.waiting import until

from .conftest import start_build_worker

pytestmark = pytest.mark.django_db(transaction=True)


def fresh(build) -> Build:
    return Build.objects.get(pk=build.pk)


@pytest.fixture
def build_ns(kube):
    """A fresh namespace of the real cluster for the build Jobs."""
    core = client.CoreV1Api(kube.api_client())
    name = f"builds-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


@pytest.fixture
def kaniko(world, kube, build_ns):
    """The world's rules building with kaniko in `build_ns` of the stack's cluster."""
    cluster = Cluster.objects.create(name=f"builder-{uuid.uuid4().hex[:6]}",
                                     auth=Cluster.Auth.KUBECONFIG,
                                     kubeconfig=kube.kubeconfig_text())
    for rule in world.rules.values():
        rule.backend, rule.build_cluster, rule.build_namespace = "kaniko", cluster, build_ns
        rule.full_clean()
        rule.save()
    world.cluster, world.ns = cluster, build_ns
    world.batch = client.BatchV1Api(kube.api_client())
    world.core = client.CoreV1Api(kube.api_client())
    return world


class SecretWatch(threading.Thread):
    """Every Secret event in a namespace from now on, as the API server reports them."""

    def __init__(self, core, ns):
        super().__init__(daemon=True)
        self.core, self.ns, self.events = core, ns, []
        self.version = core.list_namespaced_secret(ns).metadata.resource_version
        self.watch = watch.Watch()

    def run(self):
        for event in self.watch.stream(self.core.list_namespaced_secret, self.ns,
                                       resource_version=self.version, timeout_seconds=120):
            self.events.append((event["type"], event["object"]))
            deleted = {o.metadata.name for t, o in self.events if t == "DELETED"}
            if deleted and deleted >= {o.metadata.name for _, o in self.events}:
                self.watch.stop()

    def created(self) -> dict:
        return {o.metadata.name: o for t, o in self.events if t == "ADDED"}

    def deleted(self) -> set:
        return {o.metadata.name for t, o in self.events if t == "DELETED"}


def assert_no_secret(build, *secrets):
    for secret in secrets:
        assert secret not in build.log and secret not in build.message


def test_a_kaniko_push_runs_as_a_job_and_fails_honestly_when_no_image_was_pushed(
        kaniko, builds_queue, registry, git_server):
    rule = kaniko.rules["push"]
    rule.context, rule.dockerfile = "app", "app/Dockerfile"
    rule.build_args, rule.platform = {"LEVEL": "2"}, "linux/amd64"
    rule.full_clean()
    rule.save()
    sha = kaniko.service.commit({"app/Dockerfile": "FROM busybox\nRUN echo $LEVEL\n"})
    kaniko.service.tag("push-2.0.0", sha)
    secrets = SecretWatch(kaniko.core, kaniko.ns)
    secrets.start()

    build = services.start_build(rule, "push-2.0.0", sha, trigger="test")
    assert jobs.run_build(build.pk) == "failed"
    build = fresh(build)

    # The honest outcome: the Job completed (KWOK), but nothing reached the registry.
    image = f"{registry.host}/team/img{kaniko.repo.pk}:2.0.0"
    assert build.image == image and build.digest == ""
    assert build.message == (f"the kaniko Job completed, but registry {kaniko.registry.name} "
                             f"has no image {image} (and kaniko reported no digest): nothing "
                             "was pushed")
    job_name = f"gitops-ui-build-{build.pk}"
    for line in (f"kaniko Job {kaniko.ns}/{job_name} created in cluster {kaniko.cluster.name}",
                 "pod gitops-ui-build-", ": Succeeded",
                 "container kaniko terminated: Completed (exit 0)",
                 f"Job {kaniko.ns}/{job_name} complete", f"FAILED: {build.message}"):
        assert line in build.log, build.log

    # The Job, read back from the API server, followed to its end by the Job controller.
    job = kaniko.batch.read_namespaced_job(job_name, kaniko.ns)
    assert any(c.type == "Complete" and c.status == "True" for c in job.status.conditions)
    assert job.spec.backoff_limit == 0 and job.spec.active_deadline_seconds > 0
    assert job.spec.ttl_seconds_after_finished > 0
    assert job.metadata.labels["gitops-ui.io/build"] == str(build.pk)
    pod_spec = job.spec.template.spec
    container = pod_spec.containers[0]
    assert container.image == DEFAULT_EXECUTOR_IMAGE
    context = kaniko.repo.url.split("://", 1)[1]
    assert container.args == [
        f"--context=git://{context}#refs/tags/push-2.0.0#{sha}", "--dockerfile=Dockerfile",
        f"--destination={image}", "--digest-file=/dev/termination-log",
        "--context-sub-path=app", "--build-arg=LEVEL=2", "--custom-platform=linux/amd64",
        "--insecure", f"--insecure-registry={registry.host}"]  # the stack's registry: http
    env = {e.name: e for e in container.env}
    assert env["GIT_PULL_METHOD"].value == "http"
    for key in ("GIT_USERNAME", "GIT_PASSWORD"):
        assert env[key].value is None
        assert env[key].value_from.secret_key_ref.name == f"{job_name}-git"
    mount = next(m for m in container.volume_mounts if m.mount_path == "/kaniko/.docker")
    volume = next(v for v in pod_spec.volumes if v.name == mount.name)
    assert volume.secret.secret_name == f"{job_name}-registry"
    assert [(i.key, i.path) for i in volume.secret.items] == [(".dockerconfigjson",
                                                              "config.json")]
    assert pod_spec.automount_service_account_token is False

    # The Secrets existed while the Job ran (seen by a watch), and are gone now.
    secrets.join(60)
    created = secrets.created()
    config = created[f"{job_name}-registry"]
    assert config.type == "kubernetes.io/dockerconfigjson"
    auths = json.loads(base64.b64decode(config.data[".dockerconfigjson"]))["auths"]
    assert base64.b64decode(auths[registry.host]["auth"]).decode() == \
        f"{registry.username}:{registry.password}"
    git = created[f"{job_name}-git"]
    assert base64.b64decode(git.data["GIT_PASSWORD"]).decode() == git_server.password
    assert secrets.deleted() == set(created)
    assert kaniko.core.list_namespaced_secret(
        kaniko.ns, label_selector=f"gitops-ui.io/build={build.pk}").items == []

    token = auths[registry.host]["auth"]
    assert_no_secret(build, registry.password, git_server.password, token)
    assert all(registry.password not in a and git_server.password not in a
               for a in container.args)


def test_a_kaniko_build_rule_does_not_push_and_fails_without_a_digest(kaniko, builds_queue):
    sha = kaniko.service.commit({"Dockerfile": "FROM busybox\n"})
    build = services.start_build(kaniko.rules["build"], "build-3", sha, trigger="test")
    assert jobs.run_build(build.pk) == "failed"
    build = fresh(build)
    assert "reported no image digest" in build.message, build.log
    job = kaniko.batch.read_namespaced_job(f"gitops-ui-build-{build.pk}", kaniko.ns)
    assert "--no-push" in job.spec.template.spec.containers[0].args


def forbid_pods(kaniko):
    """A quota of no pods: the Job controller cannot start the build's pod, the Job stays."""
    kaniko.core.create_namespaced_resource_quota(kaniko.ns, {
        "metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}})


def test_canceling_a_kaniko_build_deletes_its_job(kaniko, builds_queue):
    forbid_pods(kaniko)
    sha = kaniko.service.commit({"Dockerfile": "FROM busybox\n"})
    build = services.start_build(kaniko.rules["push"], "push-4", sha, trigger="test")
    worker = start_build_worker(burst=True)  # the build worker `make run` starts
    try:
        running = until(lambda: fresh(build), lambda b: "created in cluster" in b.log
                        or b.finished, timeout=120)
        if running.status != "running":
            worker.kill()
            pytest.fail(f"build {running.status}:\n{running.log}\nworker:\n"
                        f"{worker.communicate()[0][-3000:]}")
        job_name = f"gitops-ui-build-{build.pk}"
        assert kaniko.batch.read_namespaced_job(job_name, kaniko.ns).status.succeeded is None
        services.cancel(running, kaniko.users["operator"])
        canceled = until(lambda: fresh(build), lambda b: b.finished, timeout=60)
        assert canceled.status == "canceled", canceled.log
        assert canceled.message == f"canceled by {kaniko.users['operator'].username} while running"
        assert f"Job {kaniko.ns}/{job_name} deleted" in canceled.log

        def job_gone():
            try:
                kaniko.batch.read_namespaced_job(job_name, kaniko.ns)
            except ApiException as exc:
                return exc.status == 404
            return False
        assert until(job_gone, bool, timeout=30)
        assert kaniko.core.list_namespaced_secret(
            kaniko.ns, label_selector=f"gitops-ui.io/build={build.pk}").items == []
        out, _ = worker.communicate(timeout=60)
        assert worker.returncode == 0, out[-2000:]
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_a_job_past_its_deadline_fails_the_build_with_the_jobs_reason(kaniko, builds_queue,
                                                                      settings):
    settings.GITOPS_UI_BUILD_TIMEOUT = 2  # the Job's activeDeadlineSeconds
    forbid_pods(kaniko)
    sha = kaniko.service.commit({"Dockerfile": "FROM busybox\n"})
    build = services.start_build(kaniko.rules["push"], "push-5", sha, trigger="test")
    assert jobs.run_build(build.pk) == "failed"
    build = fresh(build)
    assert build.message.startswith("the kaniko Job failed: DeadlineExceeded"), build.log
    assert kaniko.core.list_namespaced_secret(
        kaniko.ns, label_selector=f"gitops-ui.io/build={build.pk}").items == []


def test_a_build_cluster_that_is_down_fails_the_build_naming_it(kaniko, builds_queue):
    kaniko.cluster.auth, kaniko.cluster.kubeconfig = Cluster.Auth.TOKEN, ""
    kaniko.cluster.server, kaniko.cluster.token = f"https://127.0.0.1:{free_port()}", "t0ken-4b1"
    kaniko.cluster.save()
    build = services.start_build(kaniko.rules["push"], "push-6", "a" * 40, trigger="test")
    assert jobs.run_build(build.pk) == "failed"
    build = fresh(build)
    assert f"cannot reach cluster {kaniko.cluster.name}" in build.message, build.message
    assert f"namespace {kaniko.ns}" in build.message
    assert_no_secret(build, "t0ken-4b1")


@pytest.mark.parametrize("change, field", [
    ({"build_cluster": None}, "build_cluster"),
    ({"build_namespace": ""}, "build_namespace"),
    ({"build_namespace": "Not_A_Label"}, "build_namespace"),
    ({"executor_image": "not an image"}, "executor_image"),
    ({"destinations": [{"cluster": "elsewhere", "namespace": "*"}]}, "build_cluster"),
])
def test_a_kaniko_rule_that_cannot_run_names_the_field(kaniko, change, field):
    rule = kaniko.rules["push"]
    if "destinations" in change:
        kaniko.project.destinations = change.pop("destinations")
        kaniko.project.save()
    for name, value in change.items():
        setattr(rule, name, value)
    with pytest.raises(ValidationError) as refused:
        rule.full_clean()
    assert field in refused.value.message_dict, refused.value.message_dict


def test_the_api_switches_a_rule_to_kaniko_and_names_what_is_missing(world, kube, admin_client):
    rule = world.rules["push"]
    url = f"/api/tag-rules/{rule.pk}/"
    missing = admin_client.patch(url, {"backend": "kaniko"}, content_type="application/json")
    assert missing.status_code == 400 and "build_cluster" in missing.json()["errors"]
    cluster = Cluster.objects.create(name="builder", auth=Cluster.Auth.KUBECONFIG,
                                     kubeconfig=kube.kubeconfig_text())
    world.project.destinations = [{"cluster": "builder", "namespace": "ci-*"}]
    world.project.save()
    body = {"backend": "kaniko", "build_cluster": cluster.pk, "build_namespace": "prod"}
    outside = admin_client.patch(url, body, content_type="application/json")
    assert outside.status_code == 400
    assert "does not allow destination builder/prod" in " ".join(
        outside.json()["errors"]["build_cluster"])
    made = admin_client.patch(url, {**body, "build_namespace": "ci-builds"},
                              content_type="application/json")
    assert made.status_code == 200, made.content
    assert made.json()["executor_image"] == DEFAULT_EXECUTOR_IMAGE
    rule.refresh_from_db()
    assert (rule.backend, rule.build_cluster, rule.build_namespace) == ("kaniko", cluster,
                                                                       "ci-builds")
