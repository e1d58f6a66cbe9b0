"""The dashboard's pages through Django's test client (no browser): what each role sees, what
the server refuses, filters in the URL, and the list's live subscription. On PostgreSQL and
Redis; the browser tests (test_dashboard.py) add the cluster, Git and a real Chromium."""
import asyncio

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client

from apps.applications.models import Operation, Project, ProjectMember
from apps.clusters.models import Cluster
from apps.repositories.models import Repository
from tests.applications.factories import make_app, make_history

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shop(db, django_user_model):
    cluster = Cluster.objects.create(name="prod", server="https://127.0.0.1:1", token="t")
    repo = Repository.objects.create(url="https://git.example.com/team/deploy.git")
    default, _ = Project.objects.get_or_create(name="default")
    other = Project.objects.create(name="other")
    apps = {
        "web": make_app("web", default, repo, cluster, sync_status="Synced", health_status="Healthy"),
        "api": make_app("api", default, repo, cluster, sync_status="OutOfSync", health_status="Degraded",
                        path="api"),
        "billing": make_app("billing", other, repo, cluster, sync_status="Synced",
                            health_status="Healthy"),
    }
    users = {}
    for name, role in (("viewer", "viewer"), ("operator", "operator")):
        users[name] = django_user_model.objects.create_user(name, password="pw")
        ProjectMember.objects.create(project=default, user=users[name], role=role)
    return apps, users


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_list_shows_only_visible_applications_and_filters_from_the_url(shop):
    apps, users = shop
    viewer = client_for(users["viewer"])
    page = viewer.get("/applications/").content.decode()
    assert 'data-app="web"' in page and 'data-app="api"' in page and "billing" not in page
    only_out_of_sync = viewer.get("/applications/?sync=OutOfSync").content.decode()
    assert 'data-app="api"' in only_out_of_sync and 'data-app="web"' not in only_out_of_sync
    assert 'data-app="web"' not in viewer.get("/applications/?search=api").content.decode()
    tiles = viewer.get("/applications/?view=tiles&sort=-name").content.decode()
    assert tiles.index('data-app="web"') < tiles.index('data-app="api"')  # sorted by name, descending
    assert "No application matches these filters" in viewer.get("/applications/?health=Missing").content.decode()


def test_signed_in_home_goes_to_the_list_and_an_empty_list_says_what_to_do(db, django_user_model):
    nobody = client_for(django_user_model.objects.create_user("nobody", password="pw"))
    assert nobody.get("/").headers["Location"] == "/applications/"
    assert "Ask a platform admin to give you a role" in nobody.get("/applications/").content.decode()


def test_a_viewer_sees_no_action_and_the_server_refuses_them_anyway(shop):
    apps, users = shop
    entry = make_history(apps["web"])
    viewer = client_for(users["viewer"])
    page = viewer.get("/applications/web/").content.decode()
    assert "open-sync" not in page and "delete-dialog" not in page and "Refresh" not in page
    for action, body in (("sync", {}), ("refresh", {}), ("delete", {"cascade": "false"}),
                         ("rollback", {"history_id": entry.pk, "mode": "pin"})):
        response = viewer.post(f"/applications/web/{action}/", body)
        assert response.status_code == 403, action
        assert response.content.decode().startswith("viewer may not ")
    assert not Operation.objects.exists()
    assert apps["web"].__class__.objects.filter(name="web").exists()


def test_an_operator_sees_sync_and_another_projects_app_does_not_exist(shop):
    apps, users = shop
    operator = client_for(users["operator"])
    page = operator.get("/applications/web/").content.decode()
    assert 'id="open-sync"' in page and "delete-dialog" not in page  # deleting is for project admins
    dialog = operator.get("/applications/web/?part=sync", headers={"HX-Request": "true"}).content.decode()
    assert 'name="dry_run"' in dialog and 'name="apply_out_of_sync_only"' in dialog
    assert operator.get("/applications/billing/").status_code == 404
    assert operator.post("/applications/billing/sync/").status_code == 404


def test_a_sync_with_a_malformed_resource_key_is_refused_with_the_reason(shop):
    apps, users = shop
    operator = client_for(users["operator"])
    response = operator.post("/applications/web/sync/", {"resources": ["no-key-here"]}, follow=True)
    assert "not of the form group/kind:namespace/name" in response.content.decode()
    assert not Operation.objects.exists()


def test_a_deleted_application_left_open_says_so(shop):
    apps, users = shop
    operator = client_for(users["operator"])
    apps["api"].delete()
    fragment = operator.get("/applications/api/?part=live", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "api is gone" in fragment.content.decode()


def test_an_expired_session_on_a_live_page_leads_to_the_login_page(shop):
    response = Client().get("/applications/web/?part=live",
                            headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/applications/web/"})
    assert response.headers["HX-Redirect"].startswith("/login/?next=/applications/web/")


def test_the_list_socket_subscribes_only_to_visible_applications(shop):
    from apps.applications.consumers import ApplicationListEventsConsumer
    from apps.core.events import group_for, publish

    apps, users = shop

    async def receive(ids):
        communicator = WebsocketCommunicator(ApplicationListEventsConsumer.as_asgi(),
                                             f"/ws/applications/?ids={ids}")
        communicator.scope["user"] = users["viewer"]
        connected, _ = await communicator.connect()
        assert connected
        try:
            from asgiref.sync import sync_to_async
            for name in ("billing", "web"):
                await sync_to_async(publish)(group_for("application", apps[name].pk), {"name": name})
            return await communicator.receive_json_from(timeout=5)
        finally:
            await communicator.disconnect()

    # billing is another project's: its event never arrives, web's does.
    event = asyncio.run(receive(f"{apps['billing'].pk},{apps['web'].pk}"))
    assert event == {"name": "web"}


def test_the_sync_dialogs_options_reach_the_operation(shop):
    import django_rq

    apps, users = shop
    operator = client_for(users["operator"])
    response = operator.post("/applications/web/sync/", {
        "dry_run": "on", "apply_out_of_sync_only": "on", "replace": "on",
        "resources": ["apps/Deployment:web/web"]}, headers={"HX-Request": "true"})
    django_rq.get_queue("sync").empty()  # no worker here; the queued job is not the point
    assert response.status_code == 200 and response.headers["HX-Trigger"] == "app:changed"
    assert "Dry run of 1 selected resource started." in response.content.decode()
    op = Operation.objects.get()
    assert op.initiated_by == users["operator"]
    assert op.options == {"prune": False, "dry_run": True, "apply_out_of_sync_only": True,
                          "replace": True, "resources": ["apps/Deployment:web/web"]}


def test_a_running_operation_shows_its_progress_and_an_operator_terminates_it(shop):
    apps, users = shop
    op = Operation.objects.create(application=apps["web"], phase="Running", initiated_by=users["operator"],
                                  resources=[{"key": "apps/Deployment:web/web", "kind": "Deployment",
                                              "name": "web", "wave": 0, "action": "apply",
                                              "status": "Running", "message": "waiting for health"}])
    viewer_page = client_for(users["viewer"]).get("/applications/web/").content.decode()
    assert "Running operation: sync" in viewer_page and "waiting for health" in viewer_page
    assert "Terminate" not in viewer_page
    operator = client_for(users["operator"])
    assert "Terminate" in operator.get("/applications/web/").content.decode()
    operator.post("/applications/web/terminate/", {"operation_id": op.pk})
    op.refresh_from_db()
    assert op.terminate_requested


def test_the_list_is_paginated_and_sorted_on_the_server(shop):
    apps, users = shop
    for i in range(30):
        make_app(f"batch-{i:02d}", apps["web"].project, apps["web"].repository, apps["web"].cluster)
    viewer = client_for(users["viewer"])
    first = viewer.get("/applications/?per_page=25&sort=-name").content.decode()
    assert "Page 1 of 2" in first and first.count("<tr data-app=") == 25
    assert first.index('data-app="web"') < first.index('data-app="batch-29"')  # descending
    second = viewer.get("/applications/?per_page=25&sort=-name&page=2").content.decode()
    assert second.count("<tr data-app=") == 7  # 32 visible in all (billing is another project's)
    assert 'data-app="api"' in second and 'data-app="batch-00"' in second
    assert 'href="?per_page=25&amp;sort=-name&amp;page=1"' in second  # the filters stay in the URL


def test_a_project_admin_deletes_an_application_keeping_its_resources(shop, django_user_model):
    apps, users = shop
    lead = django_user_model.objects.create_user("lead", password="pw")
    ProjectMember.objects.create(project=apps["web"].project, user=lead, role="admin")
    client = client_for(lead)
    assert 'id="delete-dialog"' in client.get("/applications/web/").content.decode()
    assert client.post("/applications/web/delete/", {"cascade": "sideways"}, follow=True) \
        .content.decode().count("unknown cascade") == 1  # refused, with the reason
    response = client.post("/applications/web/delete/", {"cascade": "false"})
    assert response.status_code == 302 and response.headers["Location"] == "/applications/"
    assert not apps["web"].__class__.objects.filter(name="web").exists()


def test_bad_list_parameters_are_ignored_not_an_error(shop):
    apps, users = shop
    viewer = client_for(users["viewer"])
    for query in ("sort=bogus", "page=abc", "per_page=7", "page=999"):
        response = viewer.get(f"/applications/?{query}")
        assert response.status_code == 200, query
