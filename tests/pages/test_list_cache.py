"""The application list (page and API) is served from a cache in Redis while nothing changed
(apps/applications/listcache.py). What a user must never notice: another project's
applications, another person's name or CSRF token, or a status older than the last change.
Each check asks twice or more, so the later answers come from the cache. On PostgreSQL and Redis."""
import re

import pytest
from django.test import Client

from apps.applications import reconcile
from apps.applications.models import Project, ProjectMember
from apps.clusters.models import Cluster
from apps.repositories.models import Repository
from tests.applications.factories import CLUSTER_TOKEN, REPO_PASSWORD, make_app, make_history

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def two_projects(django_user_model):
    cluster = Cluster.objects.create(name="prod", server="https://127.0.0.1:1", token=CLUSTER_TOKEN,
                                     connection_status="Successful")
    repo = Repository.objects.create(url="https://git.example.com/team/deploy.git",
                                     password=REPO_PASSWORD)
    red, blue = Project.objects.create(name="red"), Project.objects.create(name="blue")
    apps = {"cart": make_app("cart", red, repo, cluster, sync_status="Synced",
                             health_status="Healthy"),
            "ledger": make_app("ledger", blue, repo, cluster, sync_status="Synced",
                               health_status="Healthy")}
    users = {"root": django_user_model.objects.create_superuser("root", password="pw")}
    for name, project in (("rita", red), ("ruth", red), ("bob", blue)):
        users[name] = django_user_model.objects.create_user(name, password="pw")
        ProjectMember.objects.create(project=project, user=users[name], role="viewer")
    return {"apps": apps, "users": users, "red": red, "blue": blue}


def client_for(user, **options) -> Client:
    client = Client(**options)
    client.force_login(user)
    return client


def shown_on_page(client, query: str = "") -> set[str]:
    page = client.get(f"/applications/{query}")
    assert page.status_code == 200
    return set(re.findall(r'data-app="([^"]+)"', page.content.decode()))


def listed_by_api(client, query: str = "") -> set[str]:
    response = client.get(f"/api/applications/{query}")
    assert response.status_code == 200
    return {row["name"] for row in response.json()["results"]}


def test_viewers_of_two_projects_each_see_their_own_applications_only(two_projects):
    users = two_projects["users"]
    rita, bob, root = (client_for(users[n]) for n in ("rita", "bob", "root"))
    for _ in range(2):  # the second round is answered from the cache
        assert shown_on_page(rita) == {"cart"} and listed_by_api(rita) == {"cart"}
        assert shown_on_page(bob) == {"ledger"} and listed_by_api(bob) == {"ledger"}
        assert shown_on_page(root) == {"cart", "ledger"}
        assert listed_by_api(root) == {"cart", "ledger"}
    # Filters are part of what is cached: the same viewer, another query, another list.
    assert shown_on_page(root, "?project=blue") == {"ledger"}
    assert listed_by_api(root, "?search=car") == {"cart"}


def test_a_status_a_worker_publishes_shows_in_the_next_request(two_projects):
    rita = client_for(two_projects["users"]["rita"])
    cart = two_projects["apps"]["cart"]
    assert 'data-filter="sync-OutOfSync"' in rita.get("/applications/").content.decode()
    assert listed_by_api(rita, "?sync=OutOfSync") == set()
    rita.get("/applications/")
    # What the engine does after a refresh: save the status and publish it (apps/core/events.py).
    reconcile.save_status(cart, sync_status="OutOfSync", health_status="Degraded")
    page = rita.get("/applications/").content.decode()
    row = re.search(r'<tr data-app="cart">.*?</tr>', page, re.S).group(0)
    assert "OutOfSync" in row and "Degraded" in row
    assert listed_by_api(rita, "?sync=OutOfSync") == {"cart"}
    assert rita.get("/api/applications/").json()["results"][0]["health_status"] == "Degraded"


def test_a_new_sync_in_history_and_a_new_application_show_at_once(two_projects):
    root = client_for(two_projects["users"]["root"])
    assert shown_on_page(root) == {"cart", "ledger"}
    assert "never" in re.search(r'<tr data-app="cart">.*?</tr>', root.get("/applications/")
                                .content.decode(), re.S).group(0)
    make_history(two_projects["apps"]["cart"])
    row = re.search(r'<tr data-app="cart">.*?</tr>', root.get("/applications/").content.decode(),
                    re.S).group(0)
    assert "<time" in row and "never" not in row
    ledger = two_projects["apps"]["ledger"]
    make_app("invoice", two_projects["blue"], ledger.repository, ledger.cluster)
    assert shown_on_page(root) == {"cart", "ledger", "invoice"}
    assert listed_by_api(root) == {"cart", "ledger", "invoice"}


def test_a_role_taken_away_hides_the_project_at_the_next_request(two_projects):
    bob = client_for(two_projects["users"]["bob"])
    assert listed_by_api(bob) == {"ledger"} and shown_on_page(bob) == {"ledger"}
    ProjectMember.objects.filter(user=two_projects["users"]["bob"]).delete()
    assert listed_by_api(bob) == set() and shown_on_page(bob) == set()
    ProjectMember.objects.create(project=two_projects["red"], user=two_projects["users"]["bob"],
                                 role="viewer")
    assert listed_by_api(bob) == {"cart"} and shown_on_page(bob) == {"cart"}


def test_each_viewer_gets_their_own_name_and_a_csrf_token_that_works(two_projects):
    """Two viewers of the same project see the same list; the page served to each names them
    and carries their own CSRF token, which their next form post (signing out) is accepted with."""
    for name in ("rita", "ruth", "rita"):
        client = client_for(two_projects["users"][name], enforce_csrf_checks=True)
        for _ in range(2):
            page = client.get("/applications/").content.decode()
            assert f"Sign out {name}" in page and "csrf-token" not in page
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        assert f'"X-CSRFToken": "{token}"' in page
        assert client.post("/logout/", {"csrfmiddlewaretoken": "wrong" + token[5:]}).status_code == 403
        assert client.post("/logout/", {"csrfmiddlewaretoken": token}).status_code == 302
        assert client.get("/applications/").status_code == 302  # signed out: to the login page


def test_an_htmx_fragment_and_the_full_page_are_not_confused(two_projects):
    root = client_for(two_projects["users"]["root"])
    full = root.get("/applications/").content.decode()
    fragment = root.get("/applications/", headers={"HX-Request": "true", "HX-Target": "results"})
    assert "<html" in full and "<html" not in fragment.content.decode()
    assert 'id="results"' in fragment.content.decode()
    assert "<html" in root.get("/applications/").content.decode()


def test_the_browsable_api_is_not_served_from_the_json_cache(two_projects):
    rita = client_for(two_projects["users"]["rita"])
    assert listed_by_api(rita) == {"cart"}
    html = rita.get("/api/applications/", headers={"Accept": "text/html"})
    assert html["Content-Type"].startswith("text/html") and "rita" in html.content.decode()
    assert rita.get("/api/applications/")["Content-Type"] == "application/json"


def test_bad_filters_are_still_refused_and_never_cached(two_projects):
    rita = client_for(two_projects["users"]["rita"])
    for _ in range(2):
        response = rita.get("/api/applications/?sync=Sideways")
        assert response.status_code == 400 and "sync" in response.json()["errors"]


def test_healthz_answers_from_its_async_view(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]
