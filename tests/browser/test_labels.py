"""Application labels in headless Chromium: chips on the list's rows and tiles, a click on a chip
or a typed selector narrows the list with the filter in the URL, and a bad selector is named; and
the images of each history entry. Screenshots: applications-labels-table, -tiles, -error and
history-images."""
import re

import pytest
from playwright.sync_api import expect

from apps.applications.models import HistoryEntry, Project
from apps.clusters.models import Cluster
from apps.repositories.models import Repository
from tests.applications.factories import make_app

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]


@pytest.fixture
def labelled(make_user):
    cluster = Cluster.objects.create(name="prod", server="https://127.0.0.1:1", token="t")
    repo = Repository.objects.create(url="https://git.example.com/team/deploy.git")
    project, _ = Project.objects.get_or_create(name="default")
    rows = [("cart", {"team": "shop", "env": "prod", "example.com/tier": "frontend"},
             "Synced", "Healthy"),
            ("cart-staging", {"team": "shop", "env": "staging"}, "OutOfSync", "Healthy"),
            ("billing", {"team": "payments", "env": "prod"}, "Synced", "Degraded"),
            ("metrics", {}, "Synced", "Progressing")]
    for name, labels, sync, health in rows:
        make_app(name, project, repo, cluster, labels=labels, path=f"deploy/{name}",
                 sync_status=sync, health_status=health)
    return make_user("ada", superuser=True)


def shown(page) -> list[str]:
    return sorted(page.locator("[data-app]").evaluate_all("els => els.map(e => e.dataset.app)"))


def test_labels_are_chips_that_filter_the_list(open_page, screenshot, labelled):
    page = open_page(labelled)
    row = page.locator('tr[data-app="cart"]')
    expect(row.locator(".labels .label")).to_have_text(
        ["env=prod", "example.com/tier=frontend", "team=shop"])
    screenshot(page, "applications-labels-table")

    row.get_by_role("link", name="team=shop").click()
    page.wait_for_url(re.compile(r"labels=team%3Dshop"))
    assert shown(page) == ["cart", "cart-staging"]
    expect(page.locator('input[name="labels"]')).to_have_value("team=shop")

    page.fill('input[name="labels"]', "env=prod,team!=shop")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"labels=env%3Dprod%2Cteam%21%3Dshop"))
    assert shown(page) == ["billing"]
    page.go_back()  # the filter lives in the URL: back is the earlier filter
    page.wait_for_url(re.compile(r"labels=team%3Dshop$"))
    assert shown(page) == ["cart", "cart-staging"]

    page.goto("/applications/?view=tiles")
    expect(page.locator('.tile[data-app="cart"] .labels .label')).to_have_count(3)
    expect(page.locator('.tile[data-app="metrics"] .labels')).to_have_count(0)
    screenshot(page, "applications-labels-tiles")

    page.goto("/applications/?labels=team+in+(shop")
    expect(page.locator("#labels-errors")).to_contain_text("'(' without ')'")
    assert shown(page) == []
    screenshot(page, "applications-labels-error")


def test_the_history_lists_the_images_of_each_entry(open_page, screenshot, labelled):
    from apps.applications.models import Application

    app = Application.objects.get(name="cart")
    for sha, images in (("a" * 40, []),  # recorded before images were
                        ("b" * 40, ["nginx:1.27", "registry.example.com/shop/migrate:7"]),
                        ("c" * 40, ["nginx:1.28", "registry.example.com/shop/migrate:8"])):
        HistoryEntry.objects.create(application=app, sha=sha, revision="main",
                                    deployed_by="ada", images=images)
    Application.objects.filter(pk=app.pk).update(synced_sha="c" * 40)
    page = open_page(labelled)
    page.goto("/applications/cart/history/")
    expect(page.locator(f'tr[data-sha="{"c" * 40}"] .image-list li')).to_have_text(
        ["nginx:1.28", "registry.example.com/shop/migrate:8"])
    expect(page.locator(f'tr[data-sha="{"a" * 40}"] .image-list')).to_have_count(0)
    screenshot(page, "history-images")
