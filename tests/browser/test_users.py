"""The user pages and the end of a session on a live page, in headless Chromium against the
web process (uvicorn, websockets) on the test database.

Screenshots go to $TMPDIR/gitops-ui-screenshots (see conftest.py)."""
import re

import pytest
from django.contrib.sessions.models import Session
from playwright.sync_api import expect

from apps.applications.models import Application, Project, ProjectMember
from apps.audit.models import AuditEntry
from apps.clusters.models import Cluster
from apps.core.sessions import SessionStore
from apps.notifications import services as notifications
from apps.notifications.models import Delivery, Webhook
from apps.repositories.models import Repository
from tests.browser.conftest import PASSWORD

SLACK_URL = "https://hooks.example.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]


@pytest.fixture
def projects(db):
    default, _ = Project.objects.get_or_create(name="default")
    shop = Project.objects.create(name="shop", description="The web shop and its API")
    return {"default": default, "shop": shop}


def test_an_admin_creates_a_user_and_gives_them_a_role(projects, open_page, make_user,
                                                        screenshot):
    make_user("vera", role="viewer", project=projects["default"])
    page = open_page(make_user("root", superuser=True))
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()
    expect(page.locator("h1")).to_have_text("Users")
    expect(page.locator("tr[data-user=vera]")).to_contain_text("default: viewer")
    expect(page.locator("tr[data-user=root]")).to_contain_text("platform admin")
    screenshot(page, "30-users")

    page.click("text=+ New user")
    page.fill("#id_username", "olivia")
    page.fill("#id_first_name", "Olivia")
    page.fill("#id_email", "olivia@example.com")
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD + "-typo")
    page.click("button:text('Create user')")
    # refused with the reason next to the field, what was typed kept (the passwords are not)
    expect(page.locator("#password2-errors")).to_contain_text("didn’t match")
    expect(page.locator("#id_username")).to_have_value("olivia")
    expect(page.locator("#id_email")).to_have_value("olivia@example.com")
    expect(page.locator("#id_password1")).to_have_value("")
    screenshot(page, "31-new-user-error")

    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.click("button:text('Create user')")
    page.wait_for_url("**/users/olivia/")
    expect(page.locator("#messages")).to_contain_text("Created olivia")
    page.select_option("#id_role-shop", "operator")
    page.click("button:text('Save roles')")
    expect(page.locator("#messages")).to_contain_text("Saved the roles of olivia in shop")
    expect(page.locator("#id_role-shop")).to_have_value("operator")
    expect(page.locator("#id_role-default")).to_have_value("")
    screenshot(page, "32-user-roles")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "32b-user-roles-phone", full_page=False)
    page.set_viewport_size({"width": 1280, "height": 860})

    olivia = ProjectMember.objects.select_related("user").get(project=projects["shop"]).user
    assert (olivia.username, olivia.email) == ("olivia", "olivia@example.com")
    assert olivia.project_roles.get().role == "operator"
    assert AuditEntry.objects.filter(action="user.created", object_name="olivia",
                                     actor_name="root").exists()

    # the project page: its restrictions edited in place, its failed notifications listed
    webhook = notifications.save_webhook(Webhook(project=projects["shop"], name="team-chat",
                                                 kind="slack", url=SLACK_URL))
    Delivery.objects.create(webhook=webhook, event="sync_failed", application="shop-api",
                            state="failed", attempts=5, last_status=500,
                            last_error="hooks.example.com answered HTTP 500")
    page.click("a:text('shop')")
    page.click("text=Change what its applications may use")
    page.fill("#id_source_repos", "https://git.example.com/shop/*")
    page.fill("#id_destinations", "prod/shop\nstaging")
    page.click("button:text('Save restrictions')")
    expect(page.locator("#destinations-errors")).to_contain_text("line 2: write cluster/namespace")
    expect(page.locator("#id_destinations")).to_have_value("prod/shop\nstaging")
    screenshot(page, "33a-project-restrictions-error")
    page.fill("#id_destinations", "prod/shop\nstaging/*")
    page.click("button:text('Save restrictions')")
    expect(page.locator("#messages")).to_contain_text("Saved what shop's applications may use")
    expect(page.locator("tr[data-delivery]")).to_contain_text("answered HTTP 500")
    assert "T00000000" not in page.content()
    screenshot(page, "33b-project-restrictions-and-failures")
    projects["shop"].refresh_from_db()
    assert projects["shop"].destinations == [{"cluster": "prod", "namespace": "shop"},
                                             {"cluster": "staging", "namespace": "*"}]

    # she signs in with the password set once above, sees her project and no Users link
    theirs = open_page(olivia)
    theirs.goto("/projects/")
    expect(theirs.locator("tr[data-project]")).to_have_count(1)
    expect(theirs.locator("tr[data-project=shop]")).to_be_visible()
    expect(theirs.get_by_role("link", name="Users")).to_have_count(0)
    assert theirs.goto("/users/").status == 403


def test_an_ended_session_on_a_live_page_leads_to_the_login_page(projects, open_page, make_user):
    cluster = Cluster.objects.create(name="prod", server="https://127.0.0.1:1", token="t")
    repo = Repository.objects.create(url="https://git.example.com/team/deploy.git")
    Application.objects.create(name="web", project=projects["default"], repository=repo,
                               cluster=cluster, namespace="web")
    page = open_page(make_user("vera", role="viewer", project=projects["default"]))
    # The page's socket goes through the browser's router, so the test can drop it as a
    # restarting server would; every message and close code still comes from the real server.
    sockets = []

    def relay(socket):
        socket.connect_to_server()
        sockets.append(socket)

    page.route_web_socket(re.compile(r"/ws/applications/web/$"), relay)
    page.goto("/applications/web/")
    expect(page.locator(".live-root")).to_have_attribute("data-live", "on")

    for key in Session.objects.values_list("session_key", flat=True):  # signed out in another tab
        SessionStore(key).delete()
    sockets[-1].close(code=1012, reason="service restart")
    # htmx reconnects; the server accepts and closes with 4401; the page goes to the login page
    page.wait_for_url("**/login/?next=/applications/web/")
    expect(page.locator("#id_username")).to_be_visible()
    assert len(sockets) == 2
