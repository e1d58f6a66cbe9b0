"""One trace from a tag to running pods, on the real stack: a `push-1.2.0` tag built with
buildah and pushed to the registry, a deploy repository on the git server naming that image,
an application synced to the control plane, where KWOK runs its Pods. The app's page and API
name, per revision and image, the build, commit, tag and digest and the pods running it since
when; the build's page and API name the application; who may not see them gets nothing."""
import uuid
from datetime import timedelta

import pytest
import yaml
from django.test import Client
from django.utils import timezone

from apps.applications import operations, refreshing, services as app_services
from apps.applications.models import Application, HistoryEntry, Project, ProjectMember
from apps.builds import services, trace
from apps.builds.models import Build
from apps.clusters import services as clusters
from apps.repositories.models import Repository
from tests.engine.manifests import deployment
from tests.registries.conftest import copy_image
from tests.waiting import until

from .conftest import dockerfile, post_tag_push, run_build_worker, tag_push

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(900)]


@pytest.fixture(autouse=True)
def _stop_cluster_watches():
    """Refreshes in this process start watch threads; they must not outlive the test's data."""
    yield
    clusters.stop_all()


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def make_app(world, deploy_repo, cluster, name: str, **fields) -> Application:
    repository = Repository.objects.create(url=deploy_repo.url, username=world.repo.username,
                                           password=world.repo.password)
    return Application.objects.create(
        name=name, project=fields.pop("project", world.project), repository=repository,
        cluster=cluster, namespace=name, path="app", sync_options=["CreateNamespace=true"],
        **fields)


def refresh_and_sync(app: Application) -> Application:
    refreshing.refresh_now(Application.objects.get(pk=app.pk))
    op = operations.run(app_services.request_sync(Application.objects.get(pk=app.pk),
                                                  enqueue=False).pk)
    assert op.phase == "Succeeded", op.message
    return Application.objects.get(pk=app.pk)


def manifests(*objects) -> str:
    return yaml.safe_dump_all(list(objects))


def app_trace(client, app) -> dict:
    answer = client.get(f"/api/applications/{app.name}/trace/")
    assert answer.status_code == 200, answer.content
    return answer.json()


def trace_section(client, page_url: str) -> str:
    """The page's Trace section as the browser gets it: the page asks for it once shown."""
    page = client.get(page_url).content.decode()
    assert f'hx-get="{page_url}?part=trace" hx-trigger="load"' in page
    fragment = client.get(f"{page_url}?part=trace", HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in fragment
    return fragment.lstrip()


def image_row(trace: dict, sha: str, image: str) -> dict:
    revision = next(r for r in trace["revisions"] if r["sha"] == sha)
    return next(i for i in revision["images"] if i["image"] == image)


def test_a_deployed_build_is_traced_from_tag_to_running_pods_and_back(
        client, world, builds_queue, buildah, registry, deploy_repo, stack_cluster):
    # The tag push-1.2.0 builds and pushes the image through the webhook and the build worker.
    sha = world.service.commit({"Dockerfile": dockerfile(buildah, "RUN echo 1.2.0 > /version")})
    world.service.tag("push-1.2.0", sha)
    answer = post_tag_push(client, tag_push(world.service, "push-1.2.0", sha),
                           delivery=str(uuid.uuid4()))
    assert answer.status_code == 202, answer.content
    run_build_worker()
    build = Build.objects.get(pk=answer.json()["builds"][0])
    assert build.status == "succeeded" and build.digest.startswith("sha256:"), build.log[-3000:]

    # The deploy repository pins it, as a write-back does; a second Deployment runs an image
    # no build here produced.
    pinned = f"{build.image}@{build.digest}"
    first = deploy_repo.commit({"app/all.yaml": manifests(
        deployment("web", image=pinned, replicas=2), deployment("side", image="nginx:1.27"))})
    app = refresh_and_sync(make_app(world, deploy_repo, stack_cluster, f"trace{build.pk}"))

    viewer = client_for(world.users["viewer"])
    trace = until(lambda: app_trace(viewer, app),
                  lambda t: image_row(t, first, pinned)["pods"]["count"] == 2, timeout=60)
    web = image_row(trace, first, pinned)
    assert trace["revisions"][0]["current"] is True and trace["live_error"] == ""
    assert web["built_here"] is True and web["digest"] == build.digest
    assert {k: web["build"][k] for k in ("id", "sha", "tag", "digest", "image", "url")} == {
        "id": build.pk, "sha": sha, "tag": "push-1.2.0", "digest": build.digest,
        "image": build.image, "url": f"/builds/{build.pk}/"}
    assert web["pods"]["count"] == 2 and len(web["pods"]["names"]) == 2
    since = web["pods"]["since"]
    assert since is not None
    side = until(lambda: image_row(app_trace(viewer, app), first, "nginx:1.27"),
                 lambda i: i["pods"]["count"] == 1, timeout=60)
    assert (side["built_here"], side["build"], side["digest"]) == (False, None, None)

    trace_part = trace_section(viewer, f"/applications/{app.name}/")
    assert trace_part.startswith('<div id="trace"')
    assert f"build #{build.pk}" in trace_part and f'href="/builds/{build.pk}/"' in trace_part
    assert sha[:7] in trace_part and "push-1.2.0" in trace_part and pinned in trace_part
    assert "2 pods running since" in trace_part and "1 pod running since" in trace_part
    assert "not built here" in trace_part

    built = viewer.get(f"/api/builds/{build.pk}/trace/").json()
    assert built["waiting_for"] == "" and built["digest"] == build.digest
    [deployed] = built["applications"]
    assert (deployed["application"], deployed["current"], deployed["pods"]["count"]) == \
        (app.name, True, 2)
    assert [r["sha"] for r in deployed["revisions"]] == [first]
    assert deployed["pods"]["since"] == since
    build_part = trace_section(viewer, f"/builds/{build.pk}/")
    assert build_part.startswith('<div id="build-trace"')
    assert app.name in build_part and "deployed now" in build_part
    assert "2 pods running since" in build_part

    # The next revision runs another image: the build's revision stays traced, its pods gone.
    copy_image(registry, buildah.base_image, f"team/elsewhere{build.pk}:2.0", "v2s2")
    other = f"{registry.host}/team/elsewhere{build.pk}:2.0"
    second = deploy_repo.commit({"app/all.yaml": manifests(
        deployment("web", image=other, replicas=2), deployment("side", image="nginx:1.27"))})
    refresh_and_sync(app)
    trace = until(lambda: app_trace(viewer, app),
                  lambda t: image_row(t, first, pinned)["pods"]["count"] == 0
                  and image_row(t, second, other)["pods"]["count"] == 2, timeout=90)
    assert [r["sha"] for r in trace["revisions"]] == [second, first]
    assert [r["current"] for r in trace["revisions"]] == [True, False]
    assert image_row(trace, second, other)["built_here"] is False
    assert image_row(trace, first, pinned)["build"]["id"] == build.pk
    assert image_row(trace, first, pinned)["pods"] == {"count": 0, "since": None, "names": []}
    [deployed] = viewer.get(f"/api/builds/{build.pk}/trace/").json()["applications"]
    assert (deployed["current"], deployed["pods"]["count"]) == (False, 0)
    build_part = trace_section(viewer, f"/builds/{build.pk}/")
    assert "replaced since" in build_part and "no pod runs it now" in build_part


@pytest.fixture
def recorded(world, builds_queue, stack_cluster, deploy_repo):
    """Builds and an application's history as the pipeline and syncs leave them (rows only:
    nothing here needs Pods): one tag pushed three times, the last after the deploy."""
    image = f"registry.example.com/team/img{world.repo.pk}"

    def pushed(digest_char: str, finished_ago: int) -> Build:
        build = services.start_build(world.rules["push"], "push-1.0.0", digest_char * 40,
                                     trigger="t")
        services.finish(build.pk, "succeeded", digest="sha256:" + digest_char * 64)
        Build.objects.filter(pk=build.pk).update(
            image=f"{image}:1.0.0", finished_at=timezone.now() - timedelta(minutes=finished_ago))
        return Build.objects.get(pk=build.pk)
    builds = {"old": pushed("a", 60), "again": pushed("b", 30), "later": pushed("c", -30)}
    other, _ = Project.objects.get_or_create(name="elsewhere")
    app = make_app(world, deploy_repo, stack_cluster, f"rec{world.repo.pk}", project=other)
    entry = HistoryEntry.objects.create(application=app, sha="d" * 40, revision="main",
                                        images=[f"{image}:1.0.0", "nginx:1.27"])
    return {"app": app, "entry": entry, "builds": builds, "image": f"{image}:1.0.0",
            "project": other}


def test_a_tag_pushed_twice_is_traced_to_the_build_pushed_before_the_deploy(world, recorded,
                                                                           admin_client):
    trace = admin_client.get(f"/api/applications/{recorded['app'].name}/trace/").json()
    row = image_row(trace, "d" * 40, recorded["image"])
    assert row["build"]["id"] == recorded["builds"]["again"].pk
    assert row["digest"] == "sha256:" + "b" * 64
    assert image_row(trace, "d" * 40, "nginx:1.27")["built_here"] is False
    again = admin_client.get(f"/api/builds/{recorded['builds']['again'].pk}/trace/").json()
    assert [a["application"] for a in again["applications"]] == [recorded["app"].name]
    for name in ("old", "later"):  # their pushes of the tag are not what was deployed
        other = admin_client.get(f"/api/builds/{recorded['builds'][name].pk}/trace/").json()
        assert other["applications"] == []
    page = trace_section(admin_client, f"/builds/{recorded['builds']['old'].pk}/")
    assert "No application you can see has deployed" in page


def test_who_may_not_see_the_build_or_the_app_gets_nothing(world, recorded, django_user_model):
    app, build = recorded["app"], recorded["builds"]["again"]
    outsider = client_for(world.users["outsider"])
    assert outsider.get(f"/api/applications/{app.name}/trace/").status_code == 404
    assert outsider.get(f"/api/builds/{build.pk}/trace/").status_code == 404
    assert outsider.get(f"/applications/{app.name}/").status_code == 404
    assert outsider.get(f"/builds/{build.pk}/").status_code == 404
    assert Client().get(f"/api/builds/{build.pk}/trace/").status_code in (401, 403)

    # A viewer of the app's project who is no member of the build's project: the image is
    # said to be built here, and nothing of the build is shown.
    app_viewer = django_user_model.objects.create_user(f"appviewer{app.pk}", password="pw")
    ProjectMember.objects.create(project=recorded["project"], user=app_viewer, role="viewer")
    viewer = client_for(app_viewer)
    row = image_row(viewer.get(f"/api/applications/{app.name}/trace/").json(), "d" * 40,
                    recorded["image"])
    assert (row["built_here"], row["build"]) == (True, None)
    page = trace_section(viewer, f"/applications/{app.name}/")
    assert "built here, in a project you cannot see" in page and f"build #{build.pk}" not in page
    assert viewer.get(f"/api/builds/{build.pk}/trace/").status_code == 404

    # The build's viewers do not see the app of a project they are not in.
    assert client_for(world.users["viewer"]).get(
        f"/api/builds/{build.pk}/trace/").json()["applications"] == []


def test_a_build_not_pushed_says_why_nothing_deployed_it(world, builds_queue):
    build = services.start_build(world.rules["build"], "build-2.0.0", "e" * 40, trigger="t")
    viewer = client_for(world.users["viewer"])
    queued = viewer.get(f"/api/builds/{build.pk}/trace/").json()
    assert queued["applications"] == [] and "has not succeeded (queued)" in queued["waiting_for"]
    services.finish(build.pk, "succeeded")
    page = trace_section(viewer, f"/builds/{build.pk}/")
    assert "its image was not pushed" in page and "push tag of the same commit" in page


def test_an_app_with_nothing_deployed_says_what_to_do(world, stack_cluster, deploy_repo,
                                                      admin_client):
    app = make_app(world, deploy_repo, stack_cluster, f"empty{world.repo.pk}")
    page = trace_section(admin_client, f"/applications/{app.name}/")
    assert "Nothing deployed yet, so nothing to trace" in page
    assert admin_client.get(f"/api/applications/{app.name}/trace/").json()["revisions"] == []


def test_a_kubelets_image_id_decides_which_digest_a_pod_runs():
    """KWOK reports no imageID; a kubelet does (repo@digest, or a bare config id that is none)."""
    def pod(name, image, image_id):
        return {"metadata": {"name": name},
                "spec": {"containers": [{"name": "main", "image": image}]},
                "status": {"startTime": "2026-12-03T10:00:00Z", "containerStatuses": [
                    {"name": "main", "image": image, "imageID": image_id,
                     "state": {"running": {"startedAt": f"2026-12-03T10:0{name[-1]}:00Z"}}}]}}
    ours, theirs = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    pods = [pod("p1", "reg.example/team/web:1.0", f"reg.example/team/web@{ours}"),
            pod("p2", "reg.example/team/web:1.0", f"docker-pullable://reg.example/team/web@{theirs}"),
            pod("p3", "reg.example/team/web:1.0", "sha256:" + "9" * 64),
            pod("p4", "reg.example/team/api:1.0", "")]
    found = trace.running(pods, {"reg.example/team/web:1.0"}, ours)
    assert (found.count, found.names) == (2, ["p1", "p3"])  # p2 was pulled after a re-push
    assert found.since.isoformat() == "2026-12-03T10:01:00+00:00"
    waiting = {**pods[0], "status": {**pods[0]["status"], "containerStatuses": [
        {"name": "main", "imageID": "", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}}
    assert trace.running([waiting], {"reg.example/team/web:1.0"}, ours).count == 0
