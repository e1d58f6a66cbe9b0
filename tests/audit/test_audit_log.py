"""The audit log: actions recorded with who, what and from where, through the API, the admin
and sign-in; who may read which entries; secrets never in an entry. On PostgreSQL and Redis."""
import json

import pytest
from django.test import Client, override_settings

from apps.audit.models import AuditEntry
from tests.applications.factories import REPO_PASSWORD, make_history
from tests.audit.conftest import client_for, entries, post

pytestmark = pytest.mark.django_db(transaction=True)


def test_actions_on_an_application_are_recorded_with_actor_and_address(team, world, sync_queue):
    operator = client_for(team["operator"], "10.1.2.3")
    synced = post(operator, "/api/applications/shop/sync", {"prune": True})
    assert synced.status_code == 202, synced.content
    assert post(operator, f"/api/operations/{synced.json()['id']}/terminate").status_code == 202
    assert post(operator, "/api/applications/shop/refresh").status_code == 202
    entry = make_history(world.app)
    # The terminated operation ended before it started: the app may roll back at once.
    rolled = post(operator, "/api/applications/shop/rollback", {"history_id": entry.pk})
    assert rolled.status_code == 202, rolled.content

    log = entries(client_for(team["operator"]), project="default")
    assert [e["action"] for e in log] == ["application.rollback", "application.refresh",
                                          "operation.terminate", "application.sync"]
    for e in log:
        assert (e["actor"], e["source_ip"], e["user_agent"]) == ("operator", "10.1.2.3",
                                                                 "audit-test/1.0")
        assert e["project"] == "default"
    sync = log[-1]
    assert sync["object_name"] == "shop" and sync["details"]["prune"] is True
    assert sync["details"]["operation"] == synced.json()["id"]
    assert log[0]["details"]["mode"] == "pin" and log[0]["details"]["sha"] == entry.sha


def test_forwarded_for_counts_only_behind_a_trusted_proxy(team, world, sync_queue):
    client = client_for(team["operator"], "192.0.2.10")
    post(client, "/api/applications/shop/refresh", HTTP_X_FORWARDED_FOR="203.0.113.5")
    with override_settings(GITOPS_UI_TRUSTED_PROXIES=["192.0.2.0/24"]):
        sync_queue.connection.delete("gitops-ui:refresh-queued:shop")
        # A client's own X-Forwarded-For entry (the first) is not believed; the proxy's is.
        post(client, "/api/applications/shop/refresh",
             HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.5")
    addresses = [e.source_ip for e in AuditEntry.objects.filter(action="application.refresh")]
    assert addresses == ["203.0.113.5", "192.0.2.10"]


def test_members_see_their_projects_entries_only(team, world, sync_queue):
    post(client_for(team["operator"]), "/api/applications/shop/refresh")
    post(client_for(team["outsider"]), "/api/applications/billing/refresh")
    admin = Client()
    admin.force_login(_admin())
    assert post(admin, "/api/clusters/", {"name": "staging", "auth": "token",
                                          "server": "https://10.0.0.1:6443",
                                          "token": "t0ken"}).status_code == 201

    viewer = client_for(team["viewer"])
    seen = entries(viewer)  # the project's entries and the viewer's own sign-in (force_login)
    assert [(e["action"], e["object_name"]) for e in seen] == [("auth.login", "viewer"),
                                                              ("application.refresh", "shop")]
    assert entries(viewer, project="other") == []
    billing = AuditEntry.objects.get(object_name="billing")
    assert viewer.get(f"/api/audit/{billing.pk}").status_code == 404
    assert client_for(team["outsider"]).get(f"/api/audit/{billing.pk}").status_code == 200
    assert {e["action"] for e in entries(admin)} >= {"application.refresh", "cluster.created"}
    # Platform entries (clusters, repositories, users) belong to no project: admins only.
    assert entries(viewer, object_type="cluster") == []

    anonymous = Client().get("/api/audit/")
    assert anonymous.status_code == 401
    assert Client().get(f"/api/audit/{billing.pk}").status_code == 401


def test_nobody_writes_the_log_through_the_api(team, world):
    admin = Client()
    admin.force_login(_admin())
    assert post(admin, "/api/audit/", {"action": "forged"}).status_code == 405
    entry = AuditEntry.objects.create(actor_name="x", action="application.sync")
    assert admin.delete(f"/api/audit/{entry.pk}").status_code == 405
    assert admin.get("/admin/audit/auditentry/").status_code == 200
    assert admin.get("/admin/audit/auditentry/add/").status_code == 403
    assert admin.post(f"/admin/audit/auditentry/{entry.pk}/delete/",
                      {"post": "yes"}).status_code == 403
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


def test_filters_by_actor_action_type_project_and_time(team, world, sync_queue):
    post(client_for(team["operator"]), "/api/applications/shop/refresh")
    post(client_for(team["outsider"]), "/api/applications/billing/refresh")
    post(client_for(team["operator"]), "/api/applications/shop/sync")
    admin = Client()
    admin.force_login(_admin())
    assert [e["action"] for e in entries(admin, actor="outsider")] == [
        "application.refresh", "auth.login"]
    assert [e["object_name"] for e in entries(admin, actor="outsider",
                                              object_type="application")] == ["billing"]
    assert {e["action"] for e in entries(admin, action="application.")} == {
        "application.refresh", "application.sync"}
    assert [e["action"] for e in entries(admin, action="application.sync")] == ["application.sync"]
    assert len(entries(admin, object_type="application", project="default")) == 2
    first = AuditEntry.objects.order_by("at").first().at
    assert entries(admin, until=(first.replace(year=first.year - 1)).isoformat()) == []
    assert len(entries(admin, since=first.isoformat(), project="other")) == 1
    bad = admin.get("/api/audit/", {"since": "yesterday"})
    assert bad.status_code == 400 and "since" in bad.json()["detail"]


def test_a_new_repository_password_is_recorded_as_changed_without_its_value(world):
    admin = Client()
    admin.force_login(_admin())
    new_password = "n3w-s3cret-passw0rd"
    changed = admin.patch(f"/api/repositories/{world.repo.pk}",
                          {"password": new_password, "username": "robot"},
                          content_type="application/json")
    assert changed.status_code == 200, changed.content
    entry = AuditEntry.objects.get(action="repository.updated")
    assert entry.details == {"changed": {"password": "(changed)",
                                         "username": {"from": "deploy", "to": "robot"}}}
    created = admin.post("/api/repositories/", {"url": "https://git.example.com/a/b.git",
                                                "password": "an0ther-s3cret"},
                         content_type="application/json")
    assert created.status_code == 201, created.content
    assert AuditEntry.objects.get(action="repository.created").details["password"] == "(set)"
    body = json.dumps(entries(admin)) + json.dumps(list(AuditEntry.objects.values()), default=str)
    for secret in (new_password, "an0ther-s3cret", REPO_PASSWORD):
        assert secret not in body


def test_project_members_and_deletions_are_recorded(team, world):
    admin = Client()
    admin.force_login(_admin())
    response = admin.patch(f"/api/projects/{world.project.pk}",
                           {"description": "shop team",
                            "members": [{"user": "viewer", "role": "operator"},
                                        {"user": "outsider", "role": "viewer"}]},
                           content_type="application/json")
    assert response.status_code == 200, response.content
    entry = AuditEntry.objects.get(action="project.updated")
    assert entry.details["changed"] == {"description": {"from": "", "to": "shop team"}}
    assert entry.details["members"] == {"operator": {"from": "operator", "to": None},
                                        "outsider": {"from": None, "to": "viewer"},
                                        "viewer": {"from": "viewer", "to": "operator"}}
    assert admin.delete("/api/applications/billing?cascade=false").status_code == 204
    assert admin.delete("/api/clusters/999999").status_code == 404
    gone = AuditEntry.objects.get(action="application.deleted")
    assert (gone.object_name, gone.project_name, gone.actor_name) == ("billing", "other", "admin")


def test_users_changed_in_the_admin_are_recorded(world):
    admin = Client(REMOTE_ADDR="10.9.9.9")
    admin.force_login(_admin())
    response = admin.post("/admin/accounts/user/add/", {
        "username": "carol", "password1": "Vq8#long-enough", "password2": "Vq8#long-enough",
        "usable_password": "true"})
    assert response.status_code == 302, response.content[:2000]
    entry = AuditEntry.objects.get(action="user.created")
    assert (entry.object_name, entry.actor_name, entry.source_ip) == ("carol", "admin", "10.9.9.9")
    assert "Vq8#long-enough" not in json.dumps(entry.details)


def test_sign_in_sign_out_and_failures_are_recorded(django_user_model):
    django_user_model.objects.create_user("dora", password="right-pw-123")
    browser = Client(REMOTE_ADDR="10.0.0.7")
    assert browser.post("/login/", {"username": "dora", "password": "nope"}).status_code == 200
    assert browser.post("/login/", {"username": "dora", "password": "right-pw-123"}).status_code == 302
    assert browser.post("/logout/").status_code == 302
    log = list(AuditEntry.objects.order_by("id").values_list("action", "actor_name",
                                                             "object_name", "source_ip"))
    assert log == [("auth.login_failed", "anonymous", "dora", "10.0.0.7"),
                   ("auth.login", "dora", "dora", "10.0.0.7"),
                   ("auth.logout", "dora", "dora", "10.0.0.7")]
    assert "nope" not in json.dumps(list(AuditEntry.objects.values_list("details", flat=True)))


def test_api_tokens_created_and_revoked_are_recorded(client, django_user_model):
    django_user_model.objects.create_user("erin", password="right-pw-123")
    created = client.post("/api/auth/token", HTTP_AUTHORIZATION=_basic("erin", "right-pw-123"))
    token = created.json()["token"]
    auth = {"HTTP_AUTHORIZATION": f"Token {token}"}
    assert client.post("/api/auth/token/revoke", **auth).status_code == 204
    log = list(AuditEntry.objects.order_by("id").values_list("action", "actor_name"))
    assert log == [("token.created", "erin"), ("token.revoked", "erin")]
    assert token not in json.dumps(list(AuditEntry.objects.values()), default=str)
    # A token user sees their own entries through the API.
    second = client.post("/api/auth/token", HTTP_AUTHORIZATION=_basic("erin", "right-pw-123"))
    mine = entries(Client(HTTP_AUTHORIZATION=f"Token {second.json()['token']}"))
    assert [e["action"] for e in mine] == ["token.created", "token.revoked", "token.created"][::-1]


def _admin():
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(
        username="admin", defaults={"is_superuser": True, "is_staff": True})
    return user


def _basic(user: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_requests_served_over_asgi_are_attributed_too(team, world, sync_queue):
    """As `make run` serves them (uvicorn, ASGI): the actor and address reach the entry."""
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    class PeerClient(AsyncClient):
        def _base_scope(self, **request):
            return {**super()._base_scope(**request), "client": ["10.4.4.4", 50000]}

    async def refresh():
        client = PeerClient()
        await client.aforce_login(team["operator"])
        return await client.post("/api/applications/shop/refresh")

    assert async_to_sync(refresh)().status_code == 202
    entry = AuditEntry.objects.get(action="application.refresh")
    assert (entry.actor_name, entry.source_ip) == ("operator", "10.4.4.4")


def test_a_webhook_push_is_recorded_as_the_webhook_without_its_token(world, sync_queue):
    from tests.applications.factories import REPO_URL, WEBHOOK_SECRET

    sender = Client(REMOTE_ADDR="10.8.8.8")
    response = sender.post("/api/webhook/git",
                           json.dumps({"repository": REPO_URL, "ref": "refs/heads/main"}),
                           content_type="application/json", HTTP_X_GITLAB_TOKEN=WEBHOOK_SECRET,
                           HTTP_IDEMPOTENCY_KEY="delivery-1")
    assert response.status_code == 202, response.content
    entry = AuditEntry.objects.get(action="repository.push")
    assert (entry.actor_name, entry.actor, entry.source_ip) == ("webhook", None, "10.8.8.8")
    assert entry.details == {"ref": "refs/heads/main", "after": "", "delivery": "delivery-1"}
    assert WEBHOOK_SECRET not in json.dumps(entry.details)
    # A refused push (wrong token) changes nothing and records nothing.
    assert sender.post("/api/webhook/git", json.dumps({"repository": REPO_URL}),
                       content_type="application/json",
                       HTTP_X_GITLAB_TOKEN="wrong").status_code == 403
    assert AuditEntry.objects.filter(action="repository.push").count() == 1


def test_commands_are_recorded_as_manage_py_or_as_the_user_named(team, world, sync_queue):
    import io

    from django.core.management import call_command

    call_command("app_sync", "shop", "--as", "operator", stdout=io.StringIO())
    Operation = world.app.operations.model
    Operation.objects.update(phase="Succeeded")  # let the next sync start
    call_command("app_sync", "shop", stdout=io.StringIO())
    actors = list(AuditEntry.objects.filter(action="application.sync").order_by("id")
                  .values_list("actor_name", flat=True))
    assert actors == ["operator", "manage.py"]
