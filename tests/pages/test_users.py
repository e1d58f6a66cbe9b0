"""The user pages (/users/), through Django's test client on PostgreSQL: platform admins list,
create, deactivate and reactivate users and set their role per project; anyone else gets 403
and no link; every change lands in the audit log, never with the password."""
import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apps.accounts.services import create_api_token
from apps.applications.models import ProjectMember
from apps.audit.models import AuditEntry
from tests.audit.conftest import client_for, team, world  # noqa: F401  fixtures

pytestmark = pytest.mark.django_db

User = get_user_model()
PASSWORD = "Kestrel-orbit-5521"
NEW_USER = {"username": "alice", "first_name": "Alice", "last_name": "Liddell",
            "email": "alice@example.com", "password1": PASSWORD, "password2": PASSWORD}


@pytest.fixture
def root(db, django_user_model):
    return django_user_model.objects.create_superuser("root", password="root-pw-77")


def signed_in(username: str, password: str) -> Client | None:
    """A client signed in through the login form, or None when the form refuses."""
    client = Client()
    response = client.post("/login/", {"username": username, "password": password})
    return client if response.status_code == 302 else None


def audit_text() -> str:
    return json.dumps(list(AuditEntry.objects.values("action", "object_name", "details")),
                      default=str)


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_anyone_but_a_platform_admin_is_refused_and_sees_no_link(team, world, role):  # noqa: F811
    user = team[role]
    client = client_for(user)
    assert 'href="/users/"' not in client.get("/projects/").content.decode()
    assert client.get("/users/").status_code == 403
    assert client.get("/users/new/").status_code == 403
    assert client.post("/users/new/", NEW_USER).status_code == 403
    assert client.get(f"/users/{user.username}/").status_code == 403
    # not even for themselves: a role is given, not taken
    assert client.post(f"/users/{user.username}/roles/", {"role-default": "admin"}).status_code == 403
    assert client.post(f"/users/{team['viewer'].username}/active/", {"active": "off"}).status_code == 403
    assert client.post(f"/users/{user.username}/details/",
                       {"email": "x@example.com", "is_superuser": "on"}).status_code == 403
    user.refresh_from_db()
    assert user.is_active and not user.is_superuser and user.email == ""
    assert ProjectMember.objects.get(user=user).role == role
    assert not User.objects.filter(username="alice").exists()
    assert not AuditEntry.objects.filter(action__startswith="user.").exists()
    assert Client().get("/users/").status_code == 302  # to the login page


def test_an_admin_lists_users_with_their_status_roles_and_last_sign_in(team, world, root):  # noqa: F811
    team["operator"].is_active = False
    team["operator"].save()
    client = client_for(root)
    html = client.get("/users/").content.decode()
    assert '<a href="/users/"' in html  # the nav link
    row = html.split('data-user="operator"')[1].split("</tr>")[0]
    assert "deactivated" in row and "default</a>: operator" in row and "never" in row
    row = html.split('data-user="root"')[1].split("</tr>")[0]
    assert "platform admin" in row and "every project" in row
    assert 'data-user="viewer"' not in client.get("/users/", {"q": "oper"}).content.decode()


def test_a_new_user_with_bad_input_shows_the_field_errors_and_keeps_what_was_typed(root):
    client = client_for(root)
    response = client.post("/users/new/", {**NEW_USER, "password2": "something-else-1"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "didn’t match" in html.split('id="password2-errors"')[1].split("</ul>")[0]
    assert 'value="alice@example.com"' in html and 'value="Liddell"' in html
    assert PASSWORD not in html  # a password is never sent back

    weak = client.post("/users/new/", {**NEW_USER, "password1": "12345678", "password2": "12345678"})
    errors = weak.content.decode().split('id="password2-errors"')[1].split("</ul>")[0]
    assert "too common" in errors and "entirely numeric" in errors

    taken = client.post("/users/new/", {**NEW_USER, "username": "ROOT"})
    assert "already exists" in taken.content.decode().split('id="username-errors"')[1]
    reserved = client.post("/users/new/", {**NEW_USER, "username": "new"})
    assert "names a page" in reserved.content.decode().split('id="username-errors"')[1]
    assert not User.objects.filter(username__in=["alice", "new"]).exists()


def test_an_admin_creates_a_user_and_gives_them_a_role(world, root):  # noqa: F811
    client = client_for(root)
    response = client.post("/users/new/", NEW_USER)
    assert response.status_code == 302 and response["Location"] == "/users/alice/"
    alice = User.objects.get(username="alice")
    assert alice.check_password(PASSWORD) and alice.is_active and not alice.is_superuser
    assert (alice.first_name, alice.email) == ("Alice", "alice@example.com")

    page = client.get("/users/alice/").content.decode()
    assert 'name="role-default"' in page
    response = client.post("/users/alice/roles/", {"role-default": "operator"})
    assert response.status_code == 302
    assert ProjectMember.objects.get(user=alice, project=world.project).role == "operator"
    # alice can now act in the project: sign-in with the password set above works
    alice_client = signed_in("alice", PASSWORD)
    assert alice_client.get("/api/applications/shop").status_code == 200

    assert client.post("/users/alice/roles/", {"role-default": "boss"}).status_code == 400
    client.post("/users/alice/roles/", {"role-default": ""})
    assert not ProjectMember.objects.filter(user=alice).exists()

    created = AuditEntry.objects.get(action="user.created", object_name="alice")
    assert created.actor_name == "root" and created.details["email"] == "alice@example.com"
    roles = [e.details["members"]["alice"] for e in
             AuditEntry.objects.filter(action="project.updated").order_by("id")]
    assert roles == [{"from": None, "to": "operator"}, {"from": "operator", "to": None}]
    assert PASSWORD not in audit_text()


def test_a_deactivated_user_cannot_sign_in_until_reactivated(team, world, root):  # noqa: F811
    viewer = team["viewer"]
    session = client_for(viewer)
    assert session.get("/api/applications/shop").status_code == 200
    _, token = create_api_token(viewer)
    script = Client(HTTP_AUTHORIZATION=f"Token {token}")
    assert script.get("/api/applications/shop").status_code == 200
    admin = client_for(root)
    assert admin.post("/users/viewer/active/", {"active": "off"}).status_code == 302
    viewer.refresh_from_db()
    assert not viewer.is_active
    assert session.get("/api/applications/shop").status_code == 401  # the session ended
    assert script.get("/api/applications/shop").status_code == 401  # and the token
    assert signed_in("viewer", "pw-viewer") is None
    assert ProjectMember.objects.filter(user=viewer).exists()  # kept for a reactivation

    admin.post("/users/viewer/active/", {"active": "on"})
    assert signed_in("viewer", "pw-viewer")
    assert list(AuditEntry.objects.filter(object_name="viewer", action__startswith="user.")
                .order_by("id").values_list("action", flat=True)) == [
        "user.deactivated", "user.reactivated"]


def test_an_admin_cannot_lock_the_platform_out(root):
    admin = client_for(root)
    response = admin.post("/users/root/active/", {"active": "off"}, follow=True)
    assert "You cannot deactivate yourself" in response.content.decode()
    response = admin.post("/users/root/details/", {"email": "root@example.com"})
    assert response.status_code == 400
    assert "yourself" in response.content.decode().split('id="is_superuser-errors"')[1]
    root.refresh_from_db()
    assert root.is_active and root.is_superuser and root.email == ""

    # a second admin may demote the first, who then holds no platform role
    other = User.objects.create_superuser("second", password="second-pw-9")
    assert client_for(other).post("/users/root/details/", {"email": "r@example.com"}).status_code == 302
    root.refresh_from_db()
    assert not root.is_superuser and not root.is_staff and root.email == "r@example.com"
    changed = AuditEntry.objects.get(action="user.updated", object_name="root").details["changed"]
    assert changed["is_superuser"] == {"from": True, "to": False}


def test_the_user_list_and_the_audit_log_share_one_pager_that_keeps_the_filters(root):
    User.objects.bulk_create(User(username=f"dev-{i:02}") for i in range(55))
    client = client_for(root)
    first = client.get("/users/", {"q": "dev-"}).content.decode()
    assert "Page 1 of 2" in first and 'href="?q=dev-&amp;page=2" rel="next">Next →' in first
    second = client.get("/users/", {"q": "dev-", "page": 2}).content.decode()
    assert 'data-user="dev-54"' in second and 'data-user="dev-00"' not in second
    assert 'href="?q=dev-&amp;page=1" rel="prev">← Previous' in second

    for user in User.objects.filter(username__startswith="dev-"):
        AuditEntry.objects.create(action="user.created", actor_name="root",
                                  object_type="user", object_name=user.username)
    audit = client.get("/audit/", {"action": "user.created"}).content.decode()
    assert "Page 1 of 2" in audit
    assert 'href="?action=user.created&amp;page=2" rel="next">Older →' in audit
