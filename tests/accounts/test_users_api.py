"""The users API (/api/users/) for automation, through Django's test client on PostgreSQL:
platform admins list, filter, create, edit, deactivate users and set their role per project;
anyone else is refused before any lookup; bad input answers 400 naming the field; no answer
ever holds a password, its hash or a token; every change lands in the audit log."""
import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

from apps.accounts.services import create_api_token
from apps.applications.models import Project, ProjectMember
from apps.audit.models import AuditEntry
from tests.audit.conftest import client_for, team, world  # noqa: F401  fixtures

pytestmark = pytest.mark.django_db

User = get_user_model()
PASSWORD = "Kestrel-orbit-5521"
NEW_PASSWORD = "Heron-lantern-8830"
ROOT_PASSWORD = "root-pw-77"


class Api:
    """A client of the API that checks every answer for secrets: no password typed in the test,
    no stored hash, no API token."""

    def __init__(self, client: Client, secrets: list[str]):
        self.client, self.secrets = client, secrets

    def __call__(self, method: str, url: str, body=None):
        kwargs = {"content_type": "application/json"} if body is not None else {}
        response = getattr(self.client, method)(url, json.dumps(body) if body is not None
                                                else None, **kwargs)
        text = response.content.decode()
        hashes = list(User.objects.values_list("password", flat=True))
        for secret in self.secrets + [h for h in hashes if h]:
            assert secret not in text, (method, url, "answer holds a secret")
        assert '"password"' not in text or response.status_code == 400, text
        assert "pbkdf2" not in text and "argon2" not in text and "bcrypt" not in text
        return response


@pytest.fixture
def root(db):
    return User.objects.create_superuser("root", password=ROOT_PASSWORD)


@pytest.fixture
def api(root):
    """The platform admin's script: an API token, as automation uses it."""
    _, token = create_api_token(root)
    return Api(Client(HTTP_AUTHORIZATION=f"Token {token}"),
               [PASSWORD, NEW_PASSWORD, ROOT_PASSWORD, token])


def audit_text() -> str:
    return json.dumps(list(AuditEntry.objects.values()), default=str)


def errors(response) -> dict:
    assert response.status_code == 400, response.content
    return response.json()["errors"]


def test_an_admin_lists_users_with_their_roles_and_filters_them(team, world, api):  # noqa: F811
    team["operator"].is_active = False
    team["operator"].save()
    body = api("get", "/api/users/").json()
    assert [u["username"] for u in body["results"]] == ["operator", "outsider", "root", "viewer"]
    viewer = next(u for u in body["results"] if u["username"] == "viewer")
    assert viewer["roles"] == [{"project": "default", "role": "viewer"}]
    assert viewer["is_active"] and not viewer["is_platform_admin"]
    assert "password" not in viewer and "current_password" not in viewer

    def names(**filters):
        response = api("get", "/api/users/?" + "&".join(f"{k}={v}" for k, v in filters.items()))
        return [u["username"] for u in response.json()["results"]]

    assert names(search="SIDE") == ["outsider"]
    assert names(is_active="false") == ["operator"]
    assert names(project="default") == ["operator", "viewer"]
    assert names(project="other", is_active="true") == ["outsider"]
    assert names(is_platform_admin="true") == ["root"]
    assert "project" in errors(api("get", "/api/users/?project=nowhere"))

    one = api("get", "/api/users/outsider/").json()
    assert one["roles"] == [{"project": "other", "role": "operator"}]
    assert api("get", "/api/users/nobody/").status_code == 404
    assert api("get", "/api/").json()["users"].endswith("/api/users/")


def test_an_admin_creates_a_user_who_can_then_sign_in(api):
    response = api("post", "/api/users/", {"username": "alice", "email": "alice@example.com",
                                           "first_name": "Alice", "password": PASSWORD})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["username"] == "alice" and body["roles"] == [] and body["is_active"]
    alice = User.objects.get(username="alice")
    assert alice.check_password(PASSWORD) and not alice.is_superuser and not alice.is_staff
    assert Client().post("/login/", {"username": "alice", "password": PASSWORD}).status_code == 302

    admin = api("post", "/api/users/", {"username": "boss", "password": NEW_PASSWORD,
                                        "is_platform_admin": True})
    assert admin.json()["is_platform_admin"]
    assert User.objects.get(username="boss").is_staff  # may open the Django admin

    created = AuditEntry.objects.get(action="user.created", object_name="alice")
    assert created.actor_name == "root" and created.details["email"] == "alice@example.com"
    assert "password" not in created.details
    assert PASSWORD not in audit_text() and NEW_PASSWORD not in audit_text()


def test_bad_input_on_create_names_the_field_and_creates_nothing(root, api):
    def create(**fields):
        return errors(api("post", "/api/users/", {"username": "alice", "password": PASSWORD,
                                                   **fields}))

    assert "already exists" in create(username="root")["username"][0]
    assert "already exists" in create(username="ROOT")["username"][0]  # any case
    assert "names a page" in create(username="new")["username"][0]
    assert create(username="no spaces please")["username"]
    weak = create(password="12345678")["password"]
    assert any("too common" in e for e in weak) and any("entirely numeric" in e for e in weak)
    assert "too similar" in " ".join(create(username="margaret", password="margaret1")["password"])
    assert "blank" in create(password="")["password"][0]
    assert "needs a password" in errors(api("post", "/api/users/", {"username": "alice"}))[
        "password"][0]
    assert create(email="not an address")["email"]
    response = api("post", "/api/users/", {"username": "alice", "password": "12345678"})
    assert "12345678" not in response.content.decode()  # a rejected password is not echoed
    assert not User.objects.exclude(username="root").exists()
    assert not AuditEntry.objects.filter(action__startswith="user.").exists()


def test_an_admin_edits_a_user_and_sets_their_password(team, api):  # noqa: F811
    viewer_session = client_for(team["viewer"])
    response = api("patch", "/api/users/viewer/", {"email": "v@example.com", "last_name": "Ng"})
    assert response.status_code == 200 and response.json()["email"] == "v@example.com"
    assert "username" in errors(api("patch", "/api/users/viewer/", {"username": "vera"}))
    assert "password" in errors(api("patch", "/api/users/viewer/", {"password": "viewer1"}))
    assert viewer_session.get("/api/applications/").status_code == 200

    # The password changes only when sent, and then their other sessions end.
    assert api("patch", "/api/users/viewer/", {"password": NEW_PASSWORD}).status_code == 200
    viewer = User.objects.get(username="viewer")
    assert viewer.check_password(NEW_PASSWORD) and viewer.email == "v@example.com"
    assert viewer_session.get("/api/applications/").status_code in (401, 403)

    edits = AuditEntry.objects.filter(action="user.updated", object_name="viewer").order_by("id")
    assert [e.details["changed"] for e in edits] == [
        {"email": {"from": "", "to": "v@example.com"}, "last_name": {"from": "", "to": "Ng"}},
        {"password": "(changed)"}]
    assert all(e.actor_name == "root" for e in edits)
    assert NEW_PASSWORD not in audit_text()


def test_an_admin_changes_their_own_password_only_with_the_current_one(root):
    session = Api(client_for(root), [NEW_PASSWORD, ROOT_PASSWORD])
    missing = errors(session("patch", "/api/users/root/", {"password": NEW_PASSWORD}))
    assert "current password" in missing["current_password"][0]
    wrong = session("patch", "/api/users/root/", {"password": NEW_PASSWORD,
                                                  "current_password": "guess"})
    assert "current_password" in errors(wrong)
    root.refresh_from_db()
    assert root.check_password(ROOT_PASSWORD)

    assert session("patch", "/api/users/root/", {"password": NEW_PASSWORD,
                                                 "current_password": ROOT_PASSWORD}).status_code == 200
    root.refresh_from_db()
    assert root.check_password(NEW_PASSWORD)
    assert session("get", "/api/users/").status_code == 200  # this session was kept


def test_deactivation_instead_of_deletion(team, root, api):  # noqa: F811
    _, token = create_api_token(team["viewer"])
    script = Client(HTTP_AUTHORIZATION=f"Token {token}")
    assert script.get("/api/applications/").status_code == 200
    api.secrets.append(token)

    response = api("post", "/api/users/viewer/deactivate/")
    assert response.status_code == 200 and not response.json()["is_active"]
    assert script.get("/api/applications/").status_code == 401
    assert ProjectMember.objects.filter(user__username="viewer").exists()  # kept
    assert api("post", "/api/users/viewer/reactivate/").json()["is_active"]
    assert script.get("/api/applications/").status_code == 200
    assert api("patch", "/api/users/viewer/", {"is_active": False}).json()["is_active"] is False

    assert api("delete", "/api/users/viewer/").status_code == 405  # no hard delete
    assert User.objects.filter(username="viewer").exists()

    refused = api("post", "/api/users/root/deactivate/")
    assert refused.status_code == 400 and "yourself" in refused.json()["detail"]
    assert "is_active" in errors(api("patch", "/api/users/root/", {"is_active": False,
                                                                   "email": "r@example.com"}))
    root.refresh_from_db()
    assert root.is_active and root.email == ""  # the refused edit left nothing behind
    assert "is_platform_admin" in errors(api("patch", "/api/users/root/",
                                             {"is_platform_admin": False}))

    assert list(AuditEntry.objects.filter(object_name="viewer", action__startswith="user.")
                .order_by("id").values_list("action", flat=True)) == [
        "user.deactivated", "user.reactivated", "user.deactivated"]


def test_an_admin_sets_and_removes_a_users_role_per_project(team, world, api):  # noqa: F811
    url = "/api/users/outsider/roles/"
    assert api("get", url).json() == [{"project": "other", "role": "operator"}]
    response = api("post", url, {"project": "default", "role": "admin"})
    assert response.status_code == 200
    assert response.json() == [{"project": "default", "role": "admin"},
                               {"project": "other", "role": "operator"}]
    assert api("post", url, {"project": "default", "role": "viewer"}).json()[0]["role"] == "viewer"
    # outsider now reads default's applications
    assert client_for(team["outsider"]).get("/api/applications/shop/").status_code == 200

    unknown = errors(api("post", url, {"project": "nowhere", "role": "admin"}))
    assert "does not exist" in unknown["project"][0]
    bad_role = errors(api("post", url, {"project": "default", "role": "boss"}))
    assert "not a valid choice" in bad_role["role"][0]
    assert set(errors(api("post", url, {}))) == {"project", "role"}

    assert api("delete", url + "default/").status_code == 204
    assert api("delete", url + "default/").status_code == 404  # no role there any more
    assert api("delete", url + "nowhere/").status_code == 404
    assert api("get", url).json() == [{"project": "other", "role": "operator"}]

    changes = [e.details["members"]["outsider"] for e in
               AuditEntry.objects.filter(action="project.updated", object_name="default")
               .order_by("id")]
    assert changes == [{"from": None, "to": "admin"}, {"from": "admin", "to": "viewer"},
                       {"from": "viewer", "to": None}]
    assert Project.objects.get(name="other").members.get().role == "operator"


def every_endpoint(username: str):
    """(method, url, body) of each users endpoint, acting on `username`."""
    user = f"/api/users/{username}/"
    return [("get", "/api/users/", None),
            ("post", "/api/users/", {"username": "mallory", "password": PASSWORD}),
            ("get", user, None),
            ("put", user, {"username": username, "email": "x@example.com"}),
            ("patch", user, {"is_platform_admin": True, "password": PASSWORD}),
            ("post", user + "deactivate/", None),
            ("post", user + "reactivate/", None),
            ("get", user + "roles/", None),
            ("post", user + "roles/", {"project": "default", "role": "admin"}),
            ("delete", user + "roles/default/", None)]


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_anyone_but_a_platform_admin_is_refused_by_every_endpoint(team, world, root, role):  # noqa: F811
    _, token = create_api_token(team[role])
    clients = {"token": Api(Client(HTTP_AUTHORIZATION=f"Token {token}"), [token, PASSWORD]),
               "session": Api(client_for(team[role]), [PASSWORD])}
    for how, api in clients.items():
        # Themselves, another user and no user at all answer alike: existence is not told.
        for target in (team[role].username, "root", "nobody"):
            for method, url, body in every_endpoint(target):
                response = api(method, url, body)
                assert response.status_code == 403, (how, method, url, response.content)
                assert f"{role} may not" in response.json()["detail"]
    member = team[role]
    member.refresh_from_db()
    assert member.is_active and not member.is_superuser and member.check_password(f"pw-{role}")
    assert ProjectMember.objects.get(user=member).role == role
    assert not User.objects.filter(username="mallory").exists()
    assert not AuditEntry.objects.filter(action__startswith="user.").exists()
    assert not AuditEntry.objects.filter(action="project.updated").exists()


def test_anonymous_callers_get_401(team, world):  # noqa: F811
    anonymous = Api(Client(), [PASSWORD])
    for method, url, body in every_endpoint("viewer"):
        response = anonymous(method, url, body)
        assert response.status_code == 401, (method, url)
        assert response["WWW-Authenticate"].startswith("Token")
    assert not User.objects.filter(username="mallory").exists()


def test_the_schema_documents_every_users_endpoint_with_its_permission():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = schema["paths"]
    expected = {"/api/users/": {"get": "view_user", "post": "add_user"},
                "/api/users/{username}/": {"get": "view_user", "put": "change_user",
                                           "patch": "change_user"},
                "/api/users/{username}/deactivate/": {"post": "change_user"},
                "/api/users/{username}/reactivate/": {"post": "change_user"},
                "/api/users/{username}/roles/": {"get": "view_user", "post": "change_user"},
                "/api/users/{username}/roles/{project}/": {"delete": "change_user"}}
    for path, operations in expected.items():
        assert set(paths[path]) == set(operations), path
        for method, perm in operations.items():
            description = paths[path][method]["description"]
            assert f"`accounts.{perm}`: platform admins" in description, (method, path)
    params = {p["name"] for p in paths["/api/users/"]["get"]["parameters"]}
    assert params >= {"search", "is_active", "is_platform_admin", "project"}
    components = schema["components"]["schemas"]
    assert "password" not in components["User"]["properties"]
    assert components["UserRequest"]["properties"]["password"]["writeOnly"]
