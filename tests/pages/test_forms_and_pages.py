"""The new-application and App-details forms, and the repositories, clusters, projects and
API-token pages, through Django's test client: what each role sees, what the server refuses,
and bad input shown next to its field with what was typed kept. On PostgreSQL and Redis."""
import pytest
from django.test import Client
from knox.models import AuthToken

from apps.applications.models import Application, Project, ProjectMember
from apps.audit.models import AuditEntry
from apps.clusters.models import Cluster
from apps.repositories.models import Repository
from tests.applications.factories import (CLUSTER_TOKEN, REPO_PASSWORD, WEBHOOK_SECRET, make_app)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shop(db, django_user_model):
    cluster = Cluster.objects.create(name="prod", server="https://127.0.0.1:1", token=CLUSTER_TOKEN,
                                     connection_status="Successful", server_version="v1.31.2")
    repo = Repository.objects.create(url="https://git.example.com/team/deploy.git",
                                     password=REPO_PASSWORD, webhook_secret=WEBHOOK_SECRET,
                                     connection_status="Failed",
                                     connection_message="authentication failed")
    default, _ = Project.objects.get_or_create(name="default")
    other = Project.objects.create(name="other")
    web = make_app("web", default, repo, cluster)
    make_app("billing", other, repo, cluster)
    users = {"root": django_user_model.objects.create_superuser("root", password="pw")}
    for name, role in (("viewer", "viewer"), ("admin", "admin")):
        users[name] = django_user_model.objects.create_user(name, password="pw")
        ProjectMember.objects.create(project=default, user=users[name], role=role)
    return {"web": web, "repo": repo, "cluster": cluster, "default": default, "other": other,
            "users": users}


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


NEW_APP = {"name": "shop-api", "project": "default", "repository": "https://git.example.com/team/deploy.git",
           "revision": "main", "path": "deploy/api", "tool": "", "cluster": "prod",
           "namespace": "shop", "retry_limit": "2", "automated": "on",
           "sync_options": ["CreateNamespace"], "source": "", "ignore_differences": ""}


def test_a_project_admin_creates_an_application_through_the_form(shop):
    admin = client_for(shop["users"]["admin"])
    assert "/applications/new/" in admin.get("/applications/").content.decode()
    form = admin.get("/applications/new/").content.decode()
    assert '<option>default</option>' in form and "<option>other</option>" not in form
    response = admin.post("/applications/new/", NEW_APP)
    assert response.status_code == 302 and response["Location"] == "/applications/shop-api/"
    app = Application.objects.get(name="shop-api")
    assert (app.path, app.revision, app.namespace, app.automated, app.sync_options) == \
        ("deploy/api", "main", "shop", True, ["CreateNamespace=true"])
    assert AuditEntry.objects.filter(action="application.created", object_name="shop-api").exists()


def test_bad_input_is_shown_next_to_its_field_and_what_was_typed_is_kept(shop):
    admin = client_for(shop["users"]["admin"])
    bad = {**NEW_APP, "path": "../../etc", "cluster": "nowhere", "source": "{not json"}
    response = admin.post("/applications/new/", bad)
    page = response.content.decode()
    assert response.status_code == 200 and not Application.objects.filter(name="shop-api").exists()
    assert 'id="path-errors"' in page and "leads outside the repository" in page
    assert 'id="cluster-errors"' in page and "nowhere" in page
    assert 'id="source-errors"' in page and "not valid JSON" in page
    # what was typed stays in the form
    assert 'value="shop-api"' in page and 'value="../../etc"' in page and 'value="shop"' in page
    assert "<option selected>nowhere</option>" in page and "{not json</textarea>" in page


def test_a_viewer_sees_no_new_or_edit_link_and_the_server_refuses_them(shop):
    viewer = client_for(shop["users"]["viewer"])
    assert "/applications/new/" not in viewer.get("/applications/").content.decode()
    assert "/applications/web/edit/" not in viewer.get("/applications/web/").content.decode()
    assert viewer.get("/applications/new/").status_code == 403
    assert viewer.post("/applications/new/", NEW_APP).status_code == 403
    assert viewer.get("/applications/web/edit/").status_code == 403
    response = viewer.post("/applications/web/edit/", {**NEW_APP, "path": "hacked"})
    assert response.status_code == 403 and response.content.decode().startswith("viewer may not ")
    assert not Application.objects.filter(name="shop-api").exists()
    assert Application.objects.get(name="web").path == "."


def test_a_project_admin_cannot_create_in_a_project_they_do_not_administer(shop):
    admin = client_for(shop["users"]["admin"])
    assert admin.post("/applications/new/", {**NEW_APP, "project": "other"}).status_code == 403
    assert not Application.objects.filter(name="shop-api").exists()


def test_app_details_edits_source_destination_and_policy(shop):
    admin = client_for(shop["users"]["admin"])
    assert "/applications/web/edit/" in admin.get("/applications/web/").content.decode()
    form = admin.get("/applications/web/edit/").content.decode()
    assert 'value="web"' in form and "disabled" in form  # the name cannot change
    response = admin.post("/applications/web/edit/", {
        **NEW_APP, "name": "renamed", "path": "deploy/web", "namespace": "web-prod", "prune": "on",
        "ignore_differences": '[{"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]}]'})
    assert response.status_code == 302
    web = Application.objects.get(name="web")
    assert (web.path, web.namespace, web.automated, web.prune) == ("deploy/web", "web-prod", True, True)
    assert web.ignore_differences[0]["jsonPointers"] == ["/spec/replicas"]
    bad = admin.post("/applications/web/edit/", {**NEW_APP, "namespace": "Not_A_Label"}).content.decode()
    assert 'id="namespace-errors"' in bad and 'value="Not_A_Label"' in bad
    assert Application.objects.get(name="web").namespace == "web-prod"


def test_the_repositories_page_shows_state_and_webhook_but_never_a_secret(shop):
    page = client_for(shop["users"]["viewer"]).get("/repositories/").content.decode()
    assert "https://git.example.com/team/deploy.git" in page and "authentication failed" in page
    assert "http://testserver/api/webhook/git" in page and "own secret set" in page
    assert WEBHOOK_SECRET not in page and REPO_PASSWORD not in page
    assert "Manage in the admin" not in page
    assert "Manage in the admin" in client_for(shop["users"]["root"]).get("/repositories/").content.decode()


def test_the_clusters_page_shows_server_state_and_version_but_never_the_token(shop):
    page = client_for(shop["users"]["viewer"]).get("/clusters/").content.decode()
    assert "https://127.0.0.1:1" in page and "Successful" in page and "v1.31.2" in page
    assert CLUSTER_TOKEN not in page


def test_pages_need_a_sign_in(shop):
    for url in ("/repositories/", "/clusters/", "/projects/", "/account/tokens", "/applications/new/"):
        assert Client().get(url)["Location"].startswith("/login/"), url


def test_projects_show_members_and_applications_only_to_those_who_see_them(shop):
    viewer = client_for(shop["users"]["viewer"])
    listing = viewer.get("/projects/").content.decode()
    assert 'data-project="default"' in listing and 'data-project="other"' not in listing
    assert viewer.get("/projects/other/").status_code == 404
    page = viewer.get("/projects/default/").content.decode()
    assert 'data-member="admin"' in page and 'data-app="web"' in page and "billing" not in page
    assert "Save members" not in page
    response = viewer.post("/projects/default/members/", {"new_user": "viewer", "new_role": "admin"})
    assert response.status_code == 403
    assert ProjectMember.objects.get(user=shop["users"]["viewer"]).role == "viewer"


def test_a_platform_admin_changes_adds_and_removes_members(shop, django_user_model):
    django_user_model.objects.create_user("newbie", password="pw")
    root = client_for(shop["users"]["root"])
    assert "Save members" in root.get("/projects/default/").content.decode()
    response = root.post("/projects/default/members/", {
        "role-viewer": "operator", "role-admin": "remove", "new_user": "newbie", "new_role": "viewer"})
    assert response.status_code == 302
    roles = dict(ProjectMember.objects.filter(project=shop["default"]).values_list("user__username", "role"))
    assert roles == {"viewer": "operator", "newbie": "viewer"}
    assert AuditEntry.objects.filter(action="project.updated", object_name="default").exists()
    bad = root.post("/projects/default/members/", {"new_user": "ghost", "new_role": "viewer"})
    assert bad.status_code == 400 and "no user named &#x27;ghost&#x27;" in bad.content.decode()
    assert 'value="ghost"' in bad.content.decode()


def test_api_tokens_are_shown_once_listed_by_prefix_and_revoked(shop):
    user = shop["users"]["viewer"]
    client = client_for(user)
    assert "No tokens" in client.get("/account/tokens").content.decode()
    created = client.post("/account/tokens")
    assert "no-store" in created["Cache-Control"]
    token = AuthToken.objects.get(user=user)
    page = created.content.decode()
    shown = page.split('<code class="token">', 1)[1].split("</code>", 1)[0]
    assert shown.startswith(token.token_key) and len(shown) > len(token.token_key) + 20
    # the token works in the API, and is never shown again
    assert Client().get("/api/applications/", HTTP_AUTHORIZATION=f"Token {shown}").status_code == 200
    listing = client.get("/account/tokens").content.decode()
    assert f'data-token="{token.token_key}"' in listing and shown not in listing
    assert AuditEntry.objects.filter(action="token.created").exists()
    # someone else's token cannot be revoked by its prefix
    other, _ = AuthToken.objects.create(user=shop["users"]["admin"])
    assert client.post("/account/tokens/revoke", {"token_key": other.token_key}).status_code == 404
    assert client.post("/account/tokens/revoke", {"token_key": token.token_key}).status_code == 302
    assert not AuthToken.objects.filter(user=user).exists()
    assert Client().get("/api/applications/", HTTP_AUTHORIZATION=f"Token {shown}").status_code == 401
    client.post("/account/tokens")
    client.post("/account/tokens")
    client.post("/account/tokens/revoke", {"all": "on"})
    assert not AuthToken.objects.filter(user=user).exists()
    assert AuthToken.objects.filter(user=shop["users"]["admin"]).count() == 1
    assert AuditEntry.objects.filter(action="token.revoked_all").exists()
