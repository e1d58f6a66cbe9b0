"""The builds API, pages, tag-rule checks and the live websocket, by role: viewers read the
builds of their projects, operators cancel them, others see nothing; no page or answer holds a
credential."""
import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.test import Client

from apps.builds import services
from apps.builds.buildlog import BuildLog
from apps.builds.consumers import BuildEventsConsumer
from apps.builds.models import Build

pytestmark = pytest.mark.django_db(transaction=True)


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def builds(world, builds_queue):
    made = {
        "queued": services.start_build(world.rules["build"], "build-1", "a" * 40, trigger="t"),
        "pushed": services.start_build(world.rules["push"], "push-1", "b" * 40, trigger="t"),
    }
    services.finish(made["pushed"].pk, "succeeded", digest="sha256:" + "f" * 64, size=1234)
    return made


def test_viewers_list_and_filter_the_builds_of_their_project(world, builds):
    viewer = client_for(world.users["viewer"])
    listed = viewer.get("/api/builds/").json()["results"]
    assert {b["id"] for b in listed} == {b.pk for b in builds.values()}
    only = viewer.get("/api/builds/?status=succeeded&action=push").json()["results"]
    assert [b["id"] for b in only] == [builds["pushed"].pk]
    assert only[0]["digest"] == "sha256:" + "f" * 64 and only[0]["size"] == 1234
    assert viewer.get("/api/builds/?tag=build-").json()["count"] == 1
    wrong = viewer.get("/api/builds/?status=exploded")
    assert wrong.status_code == 400 and "status" in wrong.json()["errors"]
    outsider = client_for(world.users["outsider"])
    assert outsider.get("/api/builds/").json()["count"] == 0
    assert outsider.get(f"/api/builds/{builds['queued'].pk}/").status_code == 404


def test_operators_cancel_viewers_may_not_and_a_finished_build_stays(world, builds):
    queued = builds["queued"]
    refused = client_for(world.users["viewer"]).post(f"/api/builds/{queued.pk}/cancel/")
    assert refused.status_code == 403 and "may not cancel build" in refused.json()["detail"]
    operator = client_for(world.users["operator"])
    answer = operator.post(f"/api/builds/{queued.pk}/cancel/")
    assert answer.status_code == 202 and answer.json()["status"] == "canceled"
    again = operator.post(f"/api/builds/{builds['pushed'].pk}/cancel/")
    assert again.status_code == 409 and "already succeeded" in again.json()["detail"]


def test_the_log_is_read_from_an_offset_and_never_holds_a_credential(world, builds, registry):
    build = builds["queued"]
    out = BuildLog(build.pk, [world.registry.password])
    out.write(f"login with {world.registry.password} worked")
    out.write("second line")
    out.flush()
    viewer = client_for(world.users["viewer"])
    body = viewer.get(f"/api/builds/{build.pk}/log/").json()
    assert body["log"] == "login with *** worked\nsecond line\n"
    tail = viewer.get(f"/api/builds/{build.pk}/log/?offset={len('login with *** worked')+1}")
    assert tail.json()["log"] == "second line\n"
    page = viewer.get(f"/builds/{build.pk}/").content.decode()
    assert "login with *** worked" in page and registry.password not in page
    assert registry.password not in viewer.get("/api/builds/").content.decode()


def test_pages_show_the_builds_to_viewers_only(world, builds):
    viewer = client_for(world.users["viewer"])
    page = viewer.get("/builds/").content.decode()
    for build in builds.values():
        assert f'data-build="{build.pk}"' in page
    assert 'data-status="succeeded"' in viewer.get("/builds/?status=succeeded").content.decode()
    detail = viewer.get(f"/builds/{builds['pushed'].pk}/").content.decode()
    assert "sha256:" + "f" * 64 in detail and 'id="cancel-build"' not in detail
    operator_page = client_for(world.users["operator"]).get(f"/builds/{builds['queued'].pk}/")
    assert 'id="cancel-build"' in operator_page.content.decode()
    outsider = client_for(world.users["outsider"])
    assert outsider.get(f"/builds/{builds['queued'].pk}/").status_code == 404
    assert f'data-build="{builds["queued"].pk}"' not in outsider.get("/builds/").content.decode()


def test_cancel_from_the_page(world, builds):
    queued = builds["queued"]
    assert client_for(world.users["viewer"]).post(f"/builds/{queued.pk}/cancel/").status_code == 403
    answer = client_for(world.users["operator"]).post(f"/builds/{queued.pk}/cancel/")
    assert answer.status_code == 302
    assert Build.objects.get(pk=queued.pk).status == "canceled"


def test_the_websocket_relays_a_builds_log_to_its_viewers_only(world, builds):
    build = builds["queued"]

    async def receive(user):
        communicator = WebsocketCommunicator(BuildEventsConsumer.as_asgi(), f"/ws/builds/{build.pk}/")
        communicator.scope["user"] = user
        communicator.scope["url_route"] = {"kwargs": {"pk": build.pk}}
        connected, _ = await communicator.connect()
        try:
            first = await communicator.receive_output(timeout=5) if connected else None
            if first and first["type"] == "websocket.close":
                return ("closed", first["code"])
            return ("open", first)
        finally:
            await communicator.disconnect()

    assert async_to_sync(receive)(world.users["outsider"]) == ("closed", 4403)

    async def listen():
        communicator = WebsocketCommunicator(BuildEventsConsumer.as_asgi(), f"/ws/builds/{build.pk}/")
        communicator.scope["user"] = world.users["viewer"]
        communicator.scope["url_route"] = {"kwargs": {"pk": build.pk}}
        connected, _ = await communicator.connect()
        assert connected
        try:
            from asgiref.sync import sync_to_async

            def write():
                out = BuildLog(build.pk, [world.registry.password])
                out.write(f"step one {world.registry.password}")
                out.flush()
            await sync_to_async(write)()
            return await communicator.receive_json_from(timeout=10)
        finally:
            await communicator.disconnect()

    event = async_to_sync(listen)()
    assert event == {"type": "build.log", "build": build.pk, "at": 0, "chunk": "step one ***\n"}


@pytest.mark.parametrize("field, value, message", [
    ("context", "../outside", "'..' is not allowed"),
    ("context", "/etc", "not an absolute path"),
    ("dockerfile", "../Dockerfile", "'..' is not allowed"),
    ("build_args", {"DB_PASSWORD": "x"}, "looks like a secret"),
    ("build_args", {"1BAD": "x"}, "build arg names"),
    ("pattern", "re:(", "not a regular expression"),
    ("image_template", "{registry}/{nope}:{version}", "unknown placeholder"),
    ("image_template", "docker.io/{name}:{version}", "starts with {registry}/"),
    ("platform", "linux amd64", "os/arch"),
])
def test_tag_rules_refuse_unusable_fields_naming_them(world, admin_client, field, value, message):
    rule = world.rules["build"]
    answer = admin_client.patch(f"/api/tag-rules/{rule.pk}/", {field: value},
                                content_type="application/json")
    assert answer.status_code == 400, answer.content
    assert message in " ".join(answer.json()["errors"][field])


def test_regex_rules_take_the_version_group(world, builds_queue):
    rule = world.rules["build"]
    rule.pattern = r"re:^release/(?P<version>\d+\.\d+)$"
    rule.save()
    build = services.start_tag_builds([world.repo], "refs/tags/release/3.1", "9" * 40)[0]
    assert build.image.endswith(f"/team/img{world.repo.pk}:3.1")
    assert services.start_tag_builds([world.repo], "refs/tags/release/x", "9" * 40) == []
    rule.pattern = "re:^nightly$"  # no group: the short SHA is the version
    rule.save()
    build = services.start_tag_builds([world.repo], "refs/tags/nightly", "8" * 40)[0]
    assert build.image.endswith(":88888888")


def test_operators_start_a_build_by_hand_and_viewers_may_not(world, builds_queue):
    rule = world.rules["build"]
    url = f"/api/tag-rules/{rule.pk}/start/?tag=build-5&sha={'7' * 40}"
    assert client_for(world.users["viewer"]).post(url).status_code == 403
    answer = client_for(world.users["operator"]).post(url)
    assert answer.status_code == 201 and answer.json()["trigger"] == world.users["operator"].username


def test_the_admin_lists_builds_and_rules_without_credentials(world, builds, admin_client,
                                                             registry):
    for url in ("/admin/builds/build/", f"/admin/builds/build/{builds['pushed'].pk}/change/",
                "/admin/builds/tagrule/", f"/admin/builds/tagrule/{world.rules['push'].pk}/change/"):
        page = admin_client.get(url)
        assert page.status_code == 200, url
        assert registry.password not in page.content.decode()
    viewer = client_for(world.users["viewer"])
    assert viewer.get("/admin/builds/build/").status_code in (302, 403)


def test_tag_rules_are_created_by_project_admins_and_recorded(world, django_user_model):
    from apps.applications.models import Project, ProjectMember
    from apps.audit.models import AuditEntry

    lead = django_user_model.objects.create_user("lead", password="pw")
    ProjectMember.objects.create(project=world.project, user=lead, role="admin")
    other = Project.objects.create(name="elsewhere")
    body = {"repository": world.repo.pk, "project": world.project.pk, "action": "push",
            "pattern": "re:^v(?P<version>.+)$", "registry": world.registry.pk}
    made = client_for(lead).post("/api/tag-rules/", body, content_type="application/json")
    assert made.status_code == 201, made.content
    assert AuditEntry.objects.filter(action="tagrule.created").exists()
    rule = made.json()["id"]
    moved = client_for(lead).patch(f"/api/tag-rules/{rule}/", {"project": other.pk},
                                   content_type="application/json")
    assert moved.status_code == 403
    refused = client_for(world.users["operator"]).post("/api/tag-rules/", body,
                                                       content_type="application/json")
    assert refused.status_code == 403
