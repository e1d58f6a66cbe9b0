"""The whole loop with the kaniko backend on real parts: a `push-1.2.0` tag → a kaniko Job in the
stack's control plane, whose pod a real kaniko executor runs on the stack's process node (it
clones the tagged commit from the git server, builds FROM the registry's base image, pushes) →
the image in the registry, read back by digest → the deploy repository's kustomization updated by
a commit → the application synced → the Deployment in the API server runs the new digest."""
import io
import json
import tarfile
import uuid

import pytest
import requests
from django.core.exceptions import ValidationError
from kubernetes import client

from apps.applications.models import ImageUpdater
from apps.builds import jobs, services
from apps.builds.models import Build
from apps.clusters.models import Cluster
from apps.core.queues import job_queue
from apps.registries import services as registries
from tests.appstack import refreshed, run_worker
from tests.applications.test_writeback import image_of, kustomization, show
from tests.engine.manifests import deployment
from tests.localstack.process_node import NODE_LABELS, NODE_NAME, PROCESS_TAINT
from tests.registries.conftest import copy_image

from tests.waiting import until

from .conftest import (dockerfile, post_tag_push, run_build_worker, start_build_worker,
                       tag_push)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(900)]


def layer_files(registry, repository: str, digest: str) -> dict[str, bytes]:
    """The regular files of an image layer, read from the registry."""
    blob = requests.get(f"{registry.url}/v2/{repository}/blobs/{digest}", timeout=30,
                        auth=(registry.username, registry.password))
    blob.raise_for_status()
    with tarfile.open(fileobj=io.BytesIO(blob.content), mode="r:*") as layer:
        return {m.name.lstrip("./"): layer.extractfile(m).read() for m in layer.getmembers()
                if m.isfile()}


@pytest.fixture
def kaniko_rules(world, kube, process_node):
    """The world's rules building with kaniko in a fresh namespace of the stack's cluster, their
    pods placed on the process node (its label, its taint tolerated)."""
    core = client.CoreV1Api(kube.api_client())
    ns = f"builds-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": ns}})
    cluster = Cluster.objects.create(name=f"builder-{uuid.uuid4().hex[:6]}",
                                     auth=Cluster.Auth.KUBECONFIG,
                                     kubeconfig=kube.kubeconfig_text())
    label = "gitops-ui.test/process-node"
    for rule in world.rules.values():
        rule.backend, rule.build_cluster, rule.build_namespace = "kaniko", cluster, ns
        rule.build_node_selector = {label: NODE_LABELS[label]}
        rule.build_tolerations = [{"key": PROCESS_TAINT["key"], "operator": "Equal",
                                   "value": PROCESS_TAINT["value"],
                                   "effect": PROCESS_TAINT["effect"]}]
        rule.full_clean()
        rule.save()
    world.ns, world.core = ns, core
    yield world
    core.delete_namespace(ns)


def test_a_kaniko_push_tag_ends_with_the_cluster_running_the_new_image_digest(
        client, kaniko_rules, builds_queue, buildah, registry, repo, make_app, process_node):
    world = kaniko_rules
    job_queue("sync").empty()
    repository = f"team/img{world.repo.pk}"
    image = f"{registry.host}/{repository}"
    copy_image(registry, buildah.base_image, f"{repository}:1.0.0", "v2s2")
    repo.push({"app/kustomization.yaml": kustomization(image, "1.0.0"),
               "app/web.yaml": deployment("web", image=image)})
    app = refreshed(make_app(repo, path="app", automated=True))
    assert image_of(app) == f"{image}:1.0.0"
    ImageUpdater.objects.create(application=app, image=image, constraint="^1.0")

    sha = world.service.commit({"Dockerfile": dockerfile(buildah, "RUN echo 1.2.0 > /version")})
    world.service.tag("push-1.2.0", sha)
    answer = post_tag_push(client, tag_push(world.service, "push-1.2.0", sha),
                           delivery=str(uuid.uuid4()))
    assert answer.status_code == 202, answer.content
    run_build_worker()  # the kaniko Job, followed to its end; queues the write-back
    build = Build.objects.get(pk=answer.json()["builds"][0])
    assert build.status == "succeeded", build.log[-3000:]
    assert build.image == f"{image}:1.2.0" and build.digest.startswith("sha256:")
    job = f"gitops-ui-build-{build.pk}"
    assert f"kaniko Job {world.ns}/{job} created" in build.log
    assert f"Job {world.ns}/{job} complete" in build.log
    assert "note: kaniko reported" not in build.log  # the termination message is the digest
    # The Job's pod ran on the process node, where the executor really ran.
    pods = world.core.list_namespaced_pod(world.ns, label_selector=f"job-name={job}").items
    assert [p.spec.node_name for p in pods] == [NODE_NAME]
    terminated = pods[0].status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.message) == (0, build.digest)
    assert not list(process_node.workdir.iterdir())  # nor the credentials written for it

    # The registry serves that digest: an image kaniko built on the base image.
    with registries.oci_client(world.registry) as oci:
        built = json.loads(oci.manifest(repository, build.digest).body)
        base = json.loads(oci.manifest(*buildah.base_image.split("/", 1)[1].rsplit(":", 1)).body)
    layers = [layer["digest"] for layer in built["layers"]]
    assert layers[:-1] == [layer["digest"] for layer in base["layers"]]  # FROM the base image
    assert len(layers) == len(base["layers"]) + 1  # and the RUN step's layer on top
    assert layer_files(registry, repository, layers[-1]) == {"version": b"1.2.0\n"}

    run_worker()  # the engine: the write-back commit, the app's refresh, its automated sync

    assert "newTag: 1.2.0" in show(repo, "app/kustomization.yaml")
    assert image_of(app) == f"{image}:1.2.0@{build.digest}"
    # Synced by the sync; Healthy once KWOK has rolled the new pods out (the refresh of a
    # watch event may come after the burst worker stopped, so ask again until then).
    app = until(lambda: refreshed(app), lambda a: (a.sync_status, a.health_status) == (
        "Synced", "Healthy"), timeout=60)


@pytest.mark.parametrize("change, field", [
    ({"build_node_selector": {"Not A Key": "x"}}, "build_node_selector"),
    ({"build_node_selector": ["pool=builds"]}, "build_node_selector"),
    ({"build_tolerations": {"key": "pool"}}, "build_tolerations"),
    ({"build_tolerations": [{"key": "pool", "operator": "Exists", "value": "x"}]},
     "build_tolerations"),
    ({"build_tolerations": [{"key": "pool", "effect": "Sometimes"}]}, "build_tolerations"),
    ({"build_tolerations": [{"key": "pool", "command": "rm -rf /"}]}, "build_tolerations"),
])
def test_a_build_pod_placement_kubernetes_would_refuse_names_the_field(kaniko_rules, change,
                                                                         field):
    rule = kaniko_rules.rules["push"]
    for name, value in change.items():
        setattr(rule, name, value)
    with pytest.raises(ValidationError) as refused:
        rule.full_clean()
    assert field in refused.value.message_dict, refused.value.message_dict


def test_a_dockerfile_that_fails_under_kaniko_fails_the_build_with_kanikos_error(
        kaniko_rules, builds_queue, buildah):
    world = kaniko_rules
    sha = world.service.commit({"Dockerfile": dockerfile(buildah, "RUN exit 3")})
    world.service.tag("push-1.3.0", sha)

    build = services.start_build(world.rules["push"], "push-1.3.0", sha, trigger="test")
    assert jobs.run_build(build.pk) == "failed"

    build = Build.objects.get(pk=build.pk)
    assert build.digest == ""
    assert "kaniko exited with 3 (Error)" in build.message, build.message  # the step's code
    # The termination message (FallbackToLogsOnError: the output's tail) is in the log.
    assert "RUN exit 3" in build.log and "exit status 3" in build.log, build.log[-3000:]


def test_canceling_a_kaniko_build_stops_its_executor_and_removes_its_pod(
        kaniko_rules, builds_queue, buildah, process_node):
    world = kaniko_rules
    sha = world.service.commit({"Dockerfile": dockerfile(buildah, "RUN sleep 300")})
    world.service.tag("push-1.4.0", sha)
    build = services.start_build(world.rules["push"], "push-1.4.0", sha, trigger="test")
    worker = start_build_worker(burst=True)
    try:
        running = until(lambda: Build.objects.get(pk=build.pk),
                        lambda b: "container kaniko running" in b.log or b.finished,
                        timeout=180)
        assert running.status == "running", running.log[-3000:]
        executors = until(lambda: list(process_node.running.values()), bool, timeout=30)
        assert len(executors) == 1
        services.cancel(running, world.users["operator"])
        canceled = until(lambda: Build.objects.get(pk=build.pk), lambda b: b.finished,
                         timeout=60)
        assert canceled.status == "canceled", canceled.log[-3000:]
        # The pod's deletion reached the node: its executor was killed, the deletion confirmed.
        assert executors[0].wait(timeout=30) == -9
        assert until(lambda: world.core.list_namespaced_pod(world.ns).items, lambda p: p == [],
                     timeout=60) == []
        assert until(lambda: list(process_node.workdir.iterdir()), lambda d: d == [],
                     timeout=30) == []
        out, _ = worker.communicate(timeout=60)
        assert worker.returncode == 0, out[-2000:]
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
