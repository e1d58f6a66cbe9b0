"""What the application page shows, through the REST API: the resource tree with owned objects,
one resource's live and desired manifests with what differs, its Kubernetes Events, the list's
filters, and the hard refresh. On the real parts: Git over smart HTTP, the control plane with
its controllers and KWOK, PostgreSQL, Redis, the local registry."""
import subprocess
from pathlib import Path

import django_rq
import pytest
from django.test import Client

from apps.applications import jobs
from apps.applications.models import Application, Project, ProjectMember
from apps.applications.rendering import render_tools
from apps.engine.source import chart as charts
from tests.engine.manifests import configmap, deployment
from tests.waiting import until

from .factories import make_app as make_row
from .test_chart_source import CONFIGMAP, OciCharts, chart_app
from tests.appstack import refreshed, sync_and_wait

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def viewers(django_user_model):
    """A viewer of project `default` and one of another project."""
    default, _ = Project.objects.get_or_create(name="default")
    other, _ = Project.objects.get_or_create(name="other")
    users = {}
    for username, project in (("viewer", default), ("outsider", other)):
        user = django_user_model.objects.create_user(username, password="pw-" + username)
        ProjectMember.objects.create(project=project, user=user, role="viewer")
        users[username] = client_for(user)
    return users


def walk(nodes):
    for node in nodes:
        yield node
        yield from walk(node["children"])


def test_tree_manifests_diff_and_events_of_a_synced_app(repo, make_app, viewers):
    repo.push({"app/web.yaml": [deployment("web", replicas=2), configmap("cfg", a="1")]})
    app = refreshed(make_app(repo, path="app"))
    assert sync_and_wait(app).phase == "Succeeded"
    base = f"/api/applications/{app.name}"
    viewer = viewers["viewer"]

    # The tree: the Deployment owns a ReplicaSet, which owns the two Pods KWOK runs.
    def tree():
        return viewer.get(f"{base}/resource-tree").json()
    body = until(tree, lambda b: sum(n["kind"] == "Pod" for n in walk(b["resources"])) == 2)
    assert body["error"] == ""
    web = next(n for n in body["resources"] if n["kind"] == "Deployment")
    assert (web["key"], web["status"]) == (f"apps/Deployment:{app.name}/web", "Synced")
    [replica_set] = web["children"]
    assert replica_set["kind"] == "ReplicaSet" and replica_set["name"].startswith("web-")
    assert [p["kind"] for p in replica_set["children"]] == ["Pod", "Pod"]
    assert all(p["health"] for p in replica_set["children"])
    cfg = next(n for n in body["resources"] if n["kind"] == "ConfigMap")
    assert cfg["children"] == [] and cfg["health"] == "Healthy"

    # A commit not yet synced: the desired manifest has it, the live one not, and the pointer
    # that differs comes with both values.
    repo.push({"app/web.yaml": [deployment("web", replicas=2), configmap("cfg", a="2")]})
    refreshed(app)
    query = f"kind=ConfigMap&namespace={app.name}&name=cfg"
    detail = viewer.get(f"{base}/resource?{query}")
    assert detail.status_code == 200, detail.content
    detail = detail.json()
    assert detail["resource"]["status"] == "OutOfSync"
    assert detail["live"]["data"] == {"a": "1"} and detail["desired"]["data"] == {"a": "2"}
    assert detail["differences"] == [{"pointer": "/data/a", "live": "1", "desired": "2"}]
    assert detail["summary"] == ["/data/a"] and len(detail["sha"]) == 40

    # The Deployment's Events: the deployment controller scaled up its ReplicaSet.
    events = until(lambda: viewer.get(f"{base}/events?group=apps&kind=Deployment"
                                      f"&namespace={app.name}&name=web").json(),
                   lambda e: any(ev["reason"] == "ScalingReplicaSet" for ev in e))
    scaled = next(ev for ev in events if ev["reason"] == "ScalingReplicaSet")
    assert scaled["type"] == "Normal" and replica_set["name"] in scaled["message"]

    # Bad input: which parameter is missing or malformed, and an unknown resource.
    missing = viewer.get(f"{base}/resource?kind=ConfigMap").json()
    assert "name" in missing["errors"], missing
    assert viewer.get(f"{base}/events?namespace=x").status_code == 400
    bad = viewer.get(f"{base}/resource?kind=Config/Map&name=cfg")
    assert bad.status_code == 400 and "kind" in bad.json()["errors"]
    unknown = viewer.get(f"{base}/resource?kind=Secret&namespace={app.name}&name=cfg")
    assert unknown.status_code == 404
    assert f"{app.name} has no resource /Secret:{app.name}/cfg" in unknown.json()["detail"]

    # Nobody else sees any of it: another project's viewer gets 404, anonymous 401.
    for url in (f"{base}/resource-tree", f"{base}/resource?{query}", f"{base}/events?{query}"):
        assert viewers["outsider"].get(url).status_code == 404, url
        assert Client().get(url).status_code == 401, url


def test_the_list_takes_the_pages_filters_and_names_a_bad_one(world, admin_client):
    other = Project.objects.create(name="other")
    make_row("billing", other, world.repo, world.cluster, sync_status="OutOfSync",
             health_status="Degraded", namespace="money")

    def names(query):
        response = admin_client.get(f"/api/applications/?{query}")
        assert response.status_code == 200, response.content
        return [a["name"] for a in response.json()["results"]]

    assert names("") == ["billing", "shop"]
    assert names("namespace=money") == ["billing"]
    assert names(f"cluster={world.cluster.name}&health=healthy") == ["shop"]
    assert names("sort=-name") == ["shop", "billing"]
    assert names("sort=-synced") == ["billing", "shop"]  # neither synced yet: by name
    for query, field in (("sync=Sideways", "sync"), ("health=Great", "health"),
                         ("sort=password", "sort")):
        response = admin_client.get(f"/api/applications/?{query}")
        assert response.status_code == 400, query
        assert field in response.json()["errors"], response.json()


def republish(oci: OciCharts, version: str, greeting: str) -> None:
    """Push chart `web` at `version` again, with another default greeting (a release rewritten
    in place: no new version, no commit)."""
    chart = oci.tmp / f"web-{greeting.replace(' ', '-')}" / "web"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: web\nversion: {version}\n")
    (chart / "values.yaml").write_text(f"greeting: {greeting}\ntier: default\n")
    (chart / "templates/configmap.yaml").write_text(CONFIGMAP)
    packed = chart.parent / "packed"
    helm = str(render_tools().helm)
    subprocess.run([helm, "package", str(chart), "-d", str(packed)], env=oci.env, check=True,
                   capture_output=True)
    pushed = subprocess.run([helm, "push", str(packed / f"web-{version}.tgz"), oci.url,
                             "--plain-http"], env=oci.env, capture_output=True, text=True)
    assert pushed.returncode == 0, pushed.stderr


@pytest.fixture
def chart_caches(monkeypatch, registry):
    monkeypatch.setenv("GITOPS_UI_HELM_PLAIN_HTTP", registry.host)
    charts.forget()
    yield
    charts.forget()


def test_hard_refresh_renders_again_what_changed_without_a_new_version(
        registry, cluster_record, name, tmp_path, chart_caches, admin_client, sync_queue):
    oci = OciCharts(registry, Path(tmp_path))
    republish(oci, "1.0.0", "hello")
    app = refreshed(chart_app(name, cluster_record, oci.url, registry.username,
                              registry.password, revision="1.0.0"))
    assert sync_and_wait(app).phase == "Succeeded"
    app = refreshed(app)
    assert app.sync_status == "Synced", app.conditions

    # The chart is rewritten under the same version. A plain refresh reuses what it rendered
    # for 1.0.0, as Argo CD's does: the app still looks Synced.
    republish(oci, "1.0.0", "rewritten")
    assert refreshed(app).sync_status == "Synced"

    # A hard refresh from the API renders again: the new greeting shows as drift.
    forget_queued(sync_queue)
    response = admin_client.post(f"/api/applications/{name}/refresh?hard=true")
    assert response.status_code == 202 and response.json()["refresh"] == "hard"
    [job] = sync_queue.jobs
    assert (job.func_name, job.args) == ("apps.applications.jobs.refresh", (name, True))
    jobs.refresh(*job.args)  # in this process, whose render cache the plain refresh used
    app = Application.objects.get(pk=app.pk)
    assert app.sync_status == "OutOfSync"
    detail = admin_client.get(f"/api/applications/{name}/resource?kind=ConfigMap"
                              f"&namespace={name}&name={name}-settings").json()
    assert {"pointer": "/data/greeting", "live": "hello",
            "desired": "rewritten"} in detail["differences"]

    # The web process renders for the diff view with a cache of its own: a hard refresh asked
    # for makes it render again too, before (and whatever) the worker does.
    republish(oci, "1.0.0", "third")
    assert refreshed(app).sync_status == "OutOfSync"  # still "rewritten" vs "hello"
    stale = admin_client.get(f"/api/applications/{name}/resource?kind=ConfigMap"
                             f"&namespace={name}&name={name}-settings").json()
    assert stale["desired"]["data"]["greeting"] == "rewritten"
    forget_queued(sync_queue)
    admin_client.post(f"/api/applications/{name}/refresh?hard=1")
    fresh = admin_client.get(f"/api/applications/{name}/resource?kind=ConfigMap"
                             f"&namespace={name}&name={name}-settings").json()
    assert fresh["desired"]["data"]["greeting"] == "third"

    # A hard refresh is not merged into a plain one already waiting; bad input is refused.
    forget_queued(sync_queue)
    admin_client.post(f"/api/applications/{name}/refresh")
    admin_client.post(f"/api/applications/{name}/refresh", {"hard": True},
                      content_type="application/json")
    assert sorted(j.args for j in sync_queue.jobs) == [(name,), (name, True)]
    refused = admin_client.post(f"/api/applications/{name}/refresh?hard=maybe")
    assert refused.status_code == 400 and "hard" in refused.json()["errors"]


def forget_queued(queue) -> None:
    """No job waiting and no refresh marked as queued (the sync queued one of its own)."""
    queue.empty()
    connection = django_rq.get_connection("sync")
    for key in connection.scan_iter("gitops-ui:*-queued:*"):
        connection.delete(key)


def test_the_app_page_offers_a_hard_refresh_to_those_who_may_refresh(world, admin_client, viewers,
                                                                     sync_queue):
    assert "Hard refresh" in admin_client.get("/applications/shop/").content.decode()
    assert "Hard refresh" not in viewers["viewer"].get("/applications/shop/").content.decode()
    response = admin_client.post("/applications/shop/refresh/", {"hard": "true"})
    assert response.status_code == 302
    assert [j.args for j in sync_queue.jobs] == [("shop", True)]
    assert viewers["viewer"].post("/applications/shop/refresh/",
                                  {"hard": "true"}).status_code == 403
