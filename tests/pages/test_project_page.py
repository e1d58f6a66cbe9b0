"""The project page: platform admins change what its applications may use (checked as the API
checks it), members see the recent failed deliveries of its notification webhooks with their
error, never the webhook's URL. Django's test client, PostgreSQL, a real HTTP receiver."""
import pytest
from django.test import override_settings

from apps.audit.models import AuditEntry
from apps.notifications import services as notifications
from apps.notifications.models import Webhook
from tests.audit.conftest import client_for, team, world  # noqa: F401  fixtures
from tests.notifications.conftest import receiver  # noqa: F401  fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(db, django_user_model):
    return django_user_model.objects.create_superuser("root", password="root-pw-77")


def test_a_platform_admin_sets_the_allowed_sources_and_destinations(team, world, root):  # noqa: F811
    admin = client_for(root)
    response = admin.post("/projects/default/restrictions/", {
        "source_repos": "https://git.example.com/team/*\n\n",
        "destinations": "prod-*/shop-*\nstaging/*"})
    assert response.status_code == 302
    world.project.refresh_from_db()
    assert world.project.source_repos == ["https://git.example.com/team/*"]
    assert world.project.destinations == [{"cluster": "prod-*", "namespace": "shop-*"},
                                          {"cluster": "staging", "namespace": "*"}]
    entry = AuditEntry.objects.get(action="project.updated", object_name="default")
    assert entry.details["changed"]["source_repos"]["to"] == ["https://git.example.com/team/*"]
    page = admin.get("/projects/default/").content.decode()
    assert "prod-*/shop-*\nstaging/*</textarea>" in page

    bad = admin.post("/projects/default/restrictions/", {"source_repos": "https://x/*",
                                                         "destinations": "prod-only"})
    assert bad.status_code == 400
    html = bad.content.decode()
    assert "line 1: write cluster/namespace" in html.split('id="destinations-errors"')[1]
    assert ">prod-only</textarea>" in html and ">https://x/*</textarea>" in html  # kept
    world.project.refresh_from_db()
    assert world.project.source_repos == ["https://git.example.com/team/*"]

    for user in (team["viewer"], team["operator"]):
        client = client_for(user)
        assert "Save restrictions" not in client.get("/projects/default/").content.decode()
        refused = client.post("/projects/default/restrictions/", {"source_repos": "", "destinations": ""})
        assert refused.status_code == 403
    world.project.refresh_from_db()
    assert world.project.destinations  # unchanged


@override_settings(GITOPS_UI_NOTIFY_ATTEMPTS=1)
def test_members_see_the_failed_notifications_without_the_webhooks_url(team, world, receiver):  # noqa: F811
    notifications.save_webhook(Webhook(project=world.project, name="team-chat", kind="slack",
                                       url=receiver.url))
    app = world.app
    receiver.answers = [500]  # the degraded notice fails (one attempt allowed)
    app.health_status, app.health_message = "Degraded", "Deployment shop has 0/2 ready"
    [failed] = notifications.status_changed(app, "Healthy")
    notifications.deliver(failed.pk)
    app.health_status, app.synced_sha = "Healthy", "a" * 40  # the deployed notice goes through
    [delivered] = notifications.status_changed(app, "Degraded")
    notifications.deliver(delivered.pk)
    failed.refresh_from_db()
    delivered.refresh_from_db()
    assert (failed.state, delivered.state) == ("failed", "delivered")

    html = client_for(team["viewer"]).get("/projects/default/").content.decode()
    section = html.split('id="failures-title"')[1].split("</section>")[0]
    assert f'data-delivery="{failed.pk}"' in section
    assert f'data-delivery="{delivered.pk}"' not in section
    assert "team-chat" in section and "answered HTTP 500" in section and "health degraded" in section
    assert "T0KEN-in-the-path" not in html and "/hooks/" not in html

    # another project's member cannot open the page at all
    assert client_for(team["outsider"]).get("/projects/default/").status_code == 404
    other = client_for(team["outsider"]).get("/projects/other/").content.decode()
    assert "failures-title" not in other
