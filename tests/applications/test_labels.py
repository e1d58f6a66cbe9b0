"""Application labels (Argo CD's metadata.labels) through the REST API and the forms, and the
list's label selector (`team=web,env!=prod`, `env`), on PostgreSQL."""
import pytest
from django.test import Client

from apps.applications.models import Application

from .factories import REPO_URL, make_app

pytestmark = pytest.mark.django_db


def app_body(**overrides):
    return {"name": "cart", "project": "default", "repository": REPO_URL, "cluster": "prod",
            "namespace": "cart", "path": "deploy", **overrides}


@pytest.fixture
def labelled(world):
    """shop (no labels) and four labelled apps of the world's project."""
    rows = {"web-prod": {"team": "web", "env": "prod"}, "web-dev": {"team": "web", "env": "dev"},
            "web-any": {"team": "web"}, "db-prod": {"team": "db", "env": "prod",
                                                    "example.com/tier": "data"}}
    for name, labels in rows.items():
        make_app(name, world.project, world.repo, world.cluster, labels=labels)
    return world


def names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return sorted(a["name"] for a in response.json()["results"])


# --- editing ---------------------------------------------------------------------------------
def test_labels_are_saved_on_create_and_replaced_on_update(admin_client, world, sync_queue):
    created = admin_client.post("/api/applications/", app_body(labels={
        "team": "web", "example.com/owner": "alice_b", "release": ""}),
        content_type="application/json")
    assert created.status_code == 201, created.content
    assert created.json()["labels"] == {"team": "web", "example.com/owner": "alice_b",
                                        "release": ""}
    updated = admin_client.patch("/api/applications/cart", {"labels": {"team": "db"}},
                                 content_type="application/json")
    assert updated.status_code == 200, updated.content
    assert Application.objects.get(name="cart").labels == {"team": "db"}
    assert admin_client.get("/api/applications/shop").json()["labels"] == {}


@pytest.mark.parametrize("labels,named", [
    ({"bad key": "x"}, "'bad key'"),
    ({"-team": "x"}, "'-team'"),
    ({"Example.COM/team": "x"}, "prefix"),
    ({"/team": "x"}, "prefix"),
    ({"a" * 64: "x"}, "at most 63"),
    ({"team": "b" * 64}, "at most 63"),
    ({"team": "web app"}, "'web app'"),
    ({"team": "-web"}, "'-web'"),
    (["team=web"], "dictionary"),
])
def test_bad_labels_are_400_naming_the_label(admin_client, world, labels, named):
    response = admin_client.post("/api/applications/", app_body(labels=labels),
                                 content_type="application/json")
    assert response.status_code == 400
    message = " ".join(map(str, response.json()["errors"]["labels"]))
    assert named in message
    assert not Application.objects.filter(name="cart").exists()


# --- the selector ------------------------------------------------------------------------------
@pytest.mark.parametrize("selector,expected", [
    ("team=web", ["web-any", "web-dev", "web-prod"]),
    ("team==web", ["web-any", "web-dev", "web-prod"]),
    ("team=web,env!=prod", ["web-any", "web-dev"]),  # != also selects apps without env
    ("env", ["db-prod", "web-dev", "web-prod"]),
    ("!env", ["shop", "web-any"]),
    ("env,env!=prod", ["web-dev"]),
    ("env in (dev, prod),team!=db", ["web-dev", "web-prod"]),
    ("env notin (prod)", ["shop", "web-any", "web-dev"]),
    ("example.com/tier=data", ["db-prod"]),
    (" team = db ", ["db-prod"]),
    ("team=nobody", []),
])
def test_the_list_api_filters_by_label_selector(admin_client, labelled, selector, expected):
    assert names(admin_client.get("/api/applications/", {"labels": selector})) == expected


@pytest.mark.parametrize("selector,named", [
    ("team=web,,env", "empty requirement"),
    ("team in (web", "'(' without ')'"),
    ("bad key=x", "'bad key=x'"),
    ("team=web app", "'team=web app'"),
    ("env in ()", "at least one value"),
])
def test_a_bad_selector_is_400_naming_it(admin_client, labelled, selector, named):
    response = admin_client.get("/api/applications/", {"labels": selector})
    assert response.status_code == 400
    assert named in " ".join(response.json()["errors"]["labels"])


def test_the_selector_combines_with_the_other_filters(admin_client, labelled):
    Application.objects.filter(name="web-dev").update(sync_status="OutOfSync")
    response = admin_client.get("/api/applications/", {"labels": "team=web", "sync": "OutOfSync"})
    assert names(response) == ["web-dev"]


# --- the list page -----------------------------------------------------------------------------
def test_the_list_page_filters_by_labels_and_shows_them_as_chips(admin_client, labelled):
    page = admin_client.get("/applications/", {"labels": "team=web,env!=prod"}).content.decode()
    shown = {name for name in ("shop", "web-prod", "web-dev", "web-any", "db-prod")
             if f'data-app="{name}"' in page}
    assert shown == {"web-any", "web-dev"}
    assert 'value="team=web,env!=prod"' in page  # the filter stays in the form and the URL
    # Each chip filters by its own label, keeping the other filters.
    assert "env=dev</a>" in page and 'href="?labels=env%3Ddev"' in page
    tiles = admin_client.get("/applications/", {"labels": "env", "view": "tiles"}).content.decode()
    assert 'class="tiles"' in tiles and "example.com/tier=data</a>" in tiles
    assert 'data-app="web-any"' not in tiles
    counts = admin_client.get("/applications/", {"labels": "team=db"}).content.decode()
    assert "1 application<" in counts


def test_the_app_page_shows_its_labels_linking_to_the_list(admin_client, labelled):
    page = admin_client.get("/applications/db-prod/").content.decode()
    assert '<a class="pill label" href="/applications/?labels=example.com/tier%3Ddata"' in page


def test_the_list_page_names_a_bad_selector(admin_client, labelled):
    page = admin_client.get("/applications/", {"labels": "team in (web"})
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="labels-errors"' in html and "&#x27;(&#x27; without &#x27;)&#x27;" in html
    assert "data-app=" not in html  # a selector it cannot read selects nothing, not everything
    assert "No application matches these filters" in html


# --- the forms ---------------------------------------------------------------------------------
FORM = {"name": "cart", "project": "default", "repository": REPO_URL, "revision": "HEAD",
        "path": "deploy", "tool": "", "cluster": "prod", "namespace": "cart", "retry_limit": "2",
        "source": "", "ignore_differences": ""}


def test_the_new_app_form_takes_one_label_a_line(admin_client, world, sync_queue):
    response = admin_client.post("/applications/new/", {
        **FORM, "labels": "team=web\n\n  example.com/env = prod \nrelease="})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Application.objects.get(name="cart").labels == {
        "team": "web", "example.com/env": "prod", "release": ""}


def test_the_form_names_each_bad_label_line_and_keeps_what_was_typed(admin_client, world):
    typed = "team=web\nno equals sign\nteam=db\nenv=prod ok\n"
    html = admin_client.post("/applications/new/", {**FORM, "labels": typed}).content.decode()
    assert not Application.objects.filter(name="cart").exists()
    assert "line 2: &#x27;no equals sign&#x27; is not of the form key=value" in html
    assert "line 3: label &#x27;team&#x27; is given twice" in html
    assert "line 4: label &#x27;env&#x27;: the value &#x27;prod ok&#x27;" in html
    assert "line 1" not in html
    assert ">team=web\nno equals sign\nteam=db\nenv=prod ok\n</textarea>" in html


def test_app_details_shows_and_changes_the_labels(admin_client, labelled, sync_queue):
    form = admin_client.get("/applications/db-prod/edit/").content.decode()
    assert ">env=prod\nexample.com/tier=data\nteam=db</textarea>" in form
    values = {**FORM, "name": "db-prod", "namespace": "db-prod", "labels": "team=data"}
    response = admin_client.post("/applications/db-prod/edit/", values)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Application.objects.get(name="db-prod").labels == {"team": "data"}


def test_a_viewer_cannot_change_labels(world, django_user_model):
    from apps.applications.models import ProjectMember

    viewer = django_user_model.objects.create_user("val", password="pw")
    ProjectMember.objects.create(project=world.project, user=viewer, role="viewer")
    client = Client()
    client.force_login(viewer)
    response = client.patch("/api/applications/shop", {"labels": {"team": "x"}},
                            content_type="application/json")
    assert response.status_code == 403
    assert Application.objects.get(name="shop").labels == {}


def test_the_admin_form_checks_labels_the_same_way(world):
    from apps.applications.admin import ApplicationForm

    data = {"name": "cart", "project": world.project.pk, "repository": world.repo.pk,
            "cluster": world.cluster.pk, "namespace": "cart", "revision": "HEAD", "path": ".",
            "retry_limit": 2, "sync_status": "Unknown", "health_status": "Unknown",
            "labels": '{"team": "web", "bad key": "x"}'}
    form = ApplicationForm(data=data)
    assert not form.is_valid()
    assert "'bad key'" in " ".join(form.errors["labels"])
    form = ApplicationForm(data={**data, "labels": '{"team": "web"}'})
    assert "labels" not in form.errors
