"""Roles per project, enforced by the one permission check the API, the websockets, the admin
and the management commands share (apps/core/access.py). On PostgreSQL and Redis."""
import asyncio

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.test import Client

from apps.applications.models import Application, Operation, Project, ProjectMember
from apps.clusters.models import Cluster
from tests.applications.factories import make_app, make_history
from tests.websockets import close_code, stays_open

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def team(world, django_user_model):
    """Project `default` holds `shop`; project `other` holds `billing`. One user per role in
    `default`, and an operator of `other` only."""
    other = Project.objects.create(name="other")
    make_app("billing", other, world.repo, world.cluster)
    users = {}
    for name, project, role in (("viewer", world.project, "viewer"),
                                ("operator", world.project, "operator"),
                                ("lead", world.project, "admin"),
                                ("outsider", other, "operator")):
        user = django_user_model.objects.create_user(name, password="pw-" + name, is_staff=True)
        ProjectMember.objects.create(project=project, user=user, role=role)
        users[name] = user
    return users


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def post(client, url, body=None):
    return client.post(url, body or {}, content_type="application/json")


def test_a_viewer_reads_but_cannot_act(team, world, sync_queue):
    viewer = client_for(team["viewer"])
    assert [a["name"] for a in viewer.get("/api/applications/").json()["results"]] == ["shop"]
    assert viewer.get("/api/applications/shop").status_code == 200
    entry = make_history(world.app)
    for url, body in (("/api/applications/shop/sync", {}),
                      ("/api/applications/shop/refresh", {}),
                      ("/api/applications/shop/rollback", {"history_id": entry.pk}),
                      ("/api/applications/shop/unpin", {})):
        response = post(viewer, url, body)
        assert response.status_code == 403, (url, response.content)
        assert response.json()["detail"].startswith("viewer may not ")
    assert viewer.delete("/api/applications/shop").status_code == 403
    assert viewer.patch("/api/applications/shop", {"revision": "evil"},
                        content_type="application/json").status_code == 403
    assert viewer.patch(f"/api/projects/{world.project.pk}", {"source_repos": ["*"]},
                        content_type="application/json").status_code == 403
    assert post(viewer, "/api/clusters/", {"name": "mine", "server": "https://10.0.0.9",
                                           "token": "x"}).status_code == 403
    assert post(viewer, f"/api/repositories/{world.repo.pk}/check").status_code == 403
    assert not Operation.objects.exists()
    assert len(sync_queue) == 0
    world.app.refresh_from_db()
    assert world.app.revision == "HEAD" and not world.app.pinned_revision


def test_an_operator_acts_only_within_their_project(team, world, sync_queue):
    operator = client_for(team["operator"])
    synced = post(operator, "/api/applications/shop/sync")
    assert synced.status_code == 202, synced.content
    assert synced.json()["initiator"] == "operator"
    assert post(operator, f"/api/operations/{synced.json()['id']}/terminate").status_code == 202
    # Another project's application does not exist for them, nor do its operations.
    assert post(operator, "/api/applications/billing/sync").status_code == 404
    assert operator.get("/api/applications/billing").status_code == 404
    outsider = client_for(team["outsider"])
    assert outsider.get(f"/api/operations/{synced.json()['id']}").status_code == 404
    assert [p["name"] for p in outsider.get("/api/projects/").json()["results"]] == ["other"]
    # Operators do not create, edit or delete applications.
    assert operator.delete("/api/applications/shop").status_code == 403
    body = {"name": "cart", "project": "default", "repository": world.repo.url,
            "cluster": world.cluster.name, "namespace": "cart", "revision": "main"}
    assert post(operator, "/api/applications/", body).status_code == 403
    assert not Application.objects.filter(name="cart").exists()


def test_a_project_admin_manages_applications_of_their_project_only(team, world, sync_queue):
    lead = client_for(team["lead"])
    body = {"name": "cart", "project": "default", "repository": world.repo.url,
            "cluster": world.cluster.name, "namespace": "cart", "revision": "main"}
    assert post(lead, "/api/applications/", body).status_code == 201
    refused = post(lead, "/api/applications/", {**body, "name": "ledger", "project": "other"})
    assert refused.status_code == 403
    assert "lead may not add application" in refused.json()["detail"]
    moved = lead.patch("/api/applications/cart", {"project": "other"}, content_type="application/json")
    assert moved.status_code == 403
    assert Application.objects.get(name="cart").project == world.project
    # Projects, clusters and repositories stay with platform admins.
    assert lead.patch(f"/api/projects/{world.project.pk}", {"description": "x"},
                      content_type="application/json").status_code == 403
    assert lead.delete("/api/applications/cart").status_code == 204


def test_platform_admins_set_roles_through_the_api(admin_client, team, world):
    response = admin_client.patch(f"/api/projects/{world.project.pk}", {"members": [
        {"user": "viewer", "role": "operator"}]}, content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["members"] == [{"user": "viewer", "role": "operator"}]
    assert post(client_for(team["viewer"]), "/api/applications/shop/sync").status_code == 202
    # The operator lost their role with the replacement: shop is gone from their view.
    assert client_for(team["operator"]).get("/api/applications/shop").status_code == 404
    twice = admin_client.patch(f"/api/projects/{world.project.pk}", {"members": [
        {"user": "viewer", "role": "operator"}, {"user": "viewer", "role": "admin"}]},
        content_type="application/json")
    assert twice.status_code == 400


def test_django_permission_rows_grant_nothing_beyond_the_roles(team, world):
    viewer = team["viewer"]
    viewer.user_permissions.add(*Permission.objects.filter(codename__in=[
        "delete_application", "change_project", "add_cluster"]))
    client = client_for(viewer)
    assert client.delete("/api/applications/shop").status_code == 403
    assert client.patch(f"/api/projects/{world.project.pk}", {"description": "x"},
                        content_type="application/json").status_code == 403
    assert Application.objects.filter(name="shop").exists()


def test_the_admin_refuses_what_the_role_does_not_allow(team, world, sync_queue):
    viewer = client_for(team["viewer"])
    listing = viewer.get("/admin/applications/application/")
    assert listing.status_code == 200
    assert b"shop" in listing.content and b"billing" not in listing.content
    # The sync action is not offered, and posting it anyway queues nothing.
    assert b"sync_now" not in listing.content
    viewer.post("/admin/applications/application/", {
        "action": "sync_now", "_selected_action": [world.app.pk]})
    assert not Operation.objects.exists()
    change = f"/admin/applications/application/{world.app.pk}/change/"
    assert viewer.post(change, {"name": "shop", "revision": "evil"}).status_code == 403
    assert viewer.post(f"/admin/applications/application/{world.app.pk}/delete/",
                       {"post": "yes"}).status_code == 403
    assert viewer.post(f"/admin/applications/project/{world.project.pk}/change/",
                       {"name": "default", "description": "taken"}).status_code == 403
    assert viewer.get("/admin/applications/application/"
                      f"{Application.objects.get(name='billing').pk}/change/").status_code in (302, 403, 404)
    world.app.refresh_from_db()
    world.project.refresh_from_db()
    assert world.app.revision == "HEAD" and Application.objects.filter(name="shop").exists()
    assert world.project.description != "taken"
    # An operator's sync through the admin goes through.
    operator = client_for(team["operator"])
    operator.post("/admin/applications/application/", {
        "action": "sync_now", "_selected_action": [world.app.pk]})
    assert Operation.objects.filter(application=world.app, initiated_by=team["operator"]).exists()


def test_commands_act_as_the_named_user(team, world, sync_queue):
    with pytest.raises(CommandError, match="viewer may not sync application shop"):
        call_command("app_sync", "shop", "--as", "viewer")
    with pytest.raises(CommandError, match="no application named 'billing'"):
        call_command("app_sync", "billing", "--as", "operator")
    with pytest.raises(CommandError, match="no active user"):
        call_command("app_sync", "shop", "--as", "nobody")
    assert not Operation.objects.exists()
    call_command("app_sync", "shop", "--as", "operator")
    assert Operation.objects.get().initiated_by == team["operator"]


def test_websocket_subscriptions_follow_visibility(team, world):
    from django.contrib.auth.models import AnonymousUser

    from apps.applications.consumers import ApplicationEventsConsumer

    def attempt(check, user, name):
        return asyncio.run(check(ApplicationEventsConsumer, f"/ws/applications/{name}/", user,
                                 {"name": name}))

    assert attempt(stays_open, team["viewer"], "shop")
    # accepted, then closed with the reason and no data: the page can tell "forbidden" (stay,
    # say so) from "not signed in" (go to the login page)
    assert attempt(close_code, team["outsider"], "shop") == 4403
    assert attempt(close_code, team["viewer"], "billing") == 4403
    assert attempt(close_code, team["viewer"], "no-such-app") == 4403
    assert attempt(close_code, AnonymousUser(), "shop") == 4401
    team["viewer"].is_active = False
    assert attempt(close_code, team["viewer"], "shop") == 4401


def test_the_list_socket_refuses_anonymous_users_with_the_login_code(team, world):
    from django.contrib.auth.models import AnonymousUser

    from apps.applications.consumers import ApplicationListEventsConsumer

    shop = Application.objects.get(name="shop")
    path = f"/ws/applications/?ids={shop.pk}"
    assert asyncio.run(close_code(ApplicationListEventsConsumer, path, AnonymousUser())) == 4401
    assert asyncio.run(stays_open(ApplicationListEventsConsumer, path, team["viewer"]))
