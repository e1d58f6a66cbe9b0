"""Argo CD's RespectIgnoreDifferences=true on the real git server and control plane: a sync
applies what ignoreDifferences ignores as the cluster has it, instead of Git's value."""
import pytest

from apps.applications.models import Application
from apps.clusters import services as clusters
from apps.engine.resources import ResourceKey
from tests.engine.manifests import deployment
from tests.waiting import until

from tests.appstack import live, refreshed, sync_and_wait

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]

IGNORE_REPLICAS = [{"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]}]


def scale(app, replicas: int) -> None:
    """What an autoscaler does: change the replicas, and wait until the watch cache has it."""
    engine = clusters.runtime(app.cluster).cluster
    deployments = engine.resource_for("apps/v1", "Deployment")
    engine.request("PATCH", deployments.path(app.namespace, "web"),
                   body={"spec": {"replicas": replicas}},
                   content_type="application/merge-patch+json")
    cache = clusters.runtime(app.cluster).cache
    key = ResourceKey("apps", "Deployment", app.namespace, "web")
    seen = until(lambda: cache.get(key), lambda obj: obj and obj["spec"]["replicas"] == replicas)
    assert seen["spec"]["replicas"] == replicas


def push_and_sync(repo, app, image: str):
    repo.push({"web.yaml": deployment("web", replicas=2, image=image)})
    op = sync_and_wait(refreshed(app))
    assert op.phase == "Succeeded", op.message
    return live(app, "apps/v1", "Deployment", "web")["spec"]


def test_respect_ignore_differences_keeps_the_live_value_of_ignored_fields(repo, make_app):
    app = make_app(repo, ignore_differences=IGNORE_REPLICAS)
    spec = push_and_sync(repo, app, "nginx:1.27")
    assert spec["replicas"] == 2  # a new object is created as Git has it

    # Without the option, a sync made for another reason writes Git's replicas back.
    scale(app, 5)
    spec = push_and_sync(repo, app, "nginx:1.28")
    assert spec["template"]["spec"]["containers"][0]["image"] == "nginx:1.28"
    assert spec["replicas"] == 2

    # With it, the sync applies the new image and leaves the replicas as the cluster has them.
    Application.objects.filter(pk=app.pk).update(
        sync_options=["CreateNamespace=true", "RespectIgnoreDifferences=true"])
    scale(app, 5)
    spec = push_and_sync(repo, app, "nginx:1.29")
    assert spec["template"]["spec"]["containers"][0]["image"] == "nginx:1.29"
    assert spec["replicas"] == 5
    assert refreshed(app).sync_status == "Synced"
