"""The container images of each deployment in the history, on the real stack: a sync through
the engine against the kube-apiserver records the images of the manifests it applied; the history
page and the API show them; older entries without images show nothing."""
import pytest
from django.test import Client

from apps.applications import operations
from tests.engine.manifests import configmap, cronjob, deployment

# The lifecycle tests' fixtures: a deploy repository on the local git server, a cluster record of
# the local control plane, and an application of both.
from tests.appstack import refreshed, sync_and_wait
from .factories import make_history

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_each_sync_records_the_images_it_deployed(repo, make_app, admin_user):  # noqa: F811
    web = deployment("web", image="nginx:1.27")
    web["spec"]["template"]["spec"]["initContainers"] = [
        {"name": "migrate", "image": "registry.example.com/shop/migrate:7"}]
    first = repo.push({"app/all.yaml": [web, deployment("api", image="nginx:1.27"),
                                        cronjob("nightly"), configmap("cfg")]})
    app = refreshed(make_app(repo, path="app"))
    op = sync_and_wait(app)
    assert op.phase == "Succeeded", op.message
    entry = app.history.get()
    # Sorted, each once (web and api share nginx), init containers and the CronJob's too.
    assert entry.images == ["busybox", "nginx:1.27", "registry.example.com/shop/migrate:7"]

    second = repo.push({"app/all.yaml": [deployment("web", image="nginx:1.28"), configmap("cfg")]},
                       message="nginx 1.28")
    app = refreshed(app)
    assert sync_and_wait(app).phase == "Succeeded"
    latest, earlier = app.history.all()[:2]
    assert (latest.sha, latest.images) == (second, ["nginx:1.28"])
    assert earlier.sha == first

    client = signed_in(admin_user)
    api = client.get(f"/api/applications/{app.name}/history").json()
    assert [e["images"] for e in api] == [["nginx:1.28"], entry.images]
    page = client.get(f"/applications/{app.name}/history/").content.decode()
    row_of_latest = page[page.index(f'data-sha="{second}"'):page.index(f'data-sha="{first}"')]
    assert "nginx:1.28" in row_of_latest and "nginx:1.27" not in row_of_latest
    assert "registry.example.com/shop/migrate:7" in page[page.index(f'data-sha="{first}"'):]


def test_a_dry_run_and_a_selective_sync(repo, make_app):  # noqa: F811
    repo.push({"app/all.yaml": [deployment("web", image="nginx:1.27"),
                                deployment("api", image="httpd:2.4")]})
    app = refreshed(make_app(repo, path="app"))
    assert sync_and_wait(app, dry_run=True).phase == "Succeeded"
    assert not app.history.exists()  # a dry run deploys nothing
    op = sync_and_wait(app, resources=["apps/Deployment:" + app.namespace + "/api"])
    assert op.phase == "Succeeded", op.message
    assert app.history.get().images == ["httpd:2.4"]  # only what this sync applied


def test_entries_from_before_images_were_recorded_show_none(world, admin_user):
    make_history(world.app)  # as stored before: no images
    client = signed_in(admin_user)
    page = client.get("/applications/shop/history/")
    assert page.status_code == 200
    assert 'class="image-list"' not in page.content.decode()
    assert client.get("/api/applications/shop/history").json()[0]["images"] == []


def test_images_of_pod_specs_of_every_workload_kind():
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "a", "image": "redis:7"}, {"name": "b"}]}}
    crd = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "r"},
           "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "app:2"}]}}}}
    broken = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "b"},
              "spec": {"template": {"spec": {"containers": "not a list"}}}}
    assert operations.deployed_images([pod, crd, broken, configmap("c"), cronjob("n")]) == \
        ["app:2", "busybox", "redis:7"]
