"""The dashboard in headless Chromium against the real stack: a user signs in, reads the list,
watches an application change live as Git changes, syncs, rolls back; a viewer cannot act.

Every test saves screenshots (see conftest.py) of the pages it visits.
"""
import itertools
import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import expect

from apps.applications import operations, refreshing, services
from apps.applications.models import Application, Project
from apps.clusters import services as clusters
from apps.clusters.models import Cluster
from apps.repositories.models import Repository
from tests.appstack import DeployRepo
from tests.engine.manifests import configmap, deployment
from tests.waiting import until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]
_ids = itertools.count()
LIVE = 60_000  # ms a live change may take to reach the page (a worker refresh, a sync)


def manifests(color="blue", limit="10"):
    return {"app/config.yaml": [configmap("settings", color=color), configmap("limits", max=limit)],
            "app/web.yaml": deployment("web")}


@pytest.fixture
def deployed(git_server, kube, tmp_path):
    """An application synced and healthy at its first commit, on the real cluster and git server."""
    name = f"shop-{next(_ids)}"
    repo = DeployRepo(git_server, name, tmp_path)
    first = repo.push(manifests(), message="First release of the shop")
    cluster = Cluster.objects.create(name=f"local-{name}", auth=Cluster.Auth.KUBECONFIG,
                                     kubeconfig=kube.kubeconfig_text())
    repository = Repository.objects.create(url=repo.url, username=git_server.username,
                                           password=git_server.password)
    project, _ = Project.objects.get_or_create(name="default")
    app = Application.objects.create(name=name, project=project, repository=repository,
                                     cluster=cluster, namespace=name, path="app",
                                     sync_options=["CreateNamespace=true"])
    sync_now(app)
    app.repo, app.first_sha = repo, first
    return app


def sync_now(app, **options):
    """Refresh and sync in this process, as a worker would. In a thread of its own: Playwright
    keeps an event loop running in this one, and publishing live events needs none."""
    def sync():
        refreshing.refresh_now(Application.objects.get(pk=app.pk))
        op = operations.run(services.request_sync(app, enqueue=False, **options).pk)
        assert op.phase == "Succeeded", op.message
        return until(lambda: refreshed(app),
                     lambda a: (a.sync_status, a.health_status) == ("Synced", "Healthy"))

    with ThreadPoolExecutor(1) as pool:
        healthy = pool.submit(sync).result()
    assert (healthy.sync_status, healthy.health_status) == ("Synced", "Healthy")
    return healthy


def refreshed(app):
    refreshing.refresh_now(Application.objects.get(pk=app.pk))
    return Application.objects.get(pk=app.pk)


def live_data(app, name) -> dict:
    engine = clusters.runtime(app.cluster).cluster
    return engine.get(engine.resource_for("v1", "ConfigMap"), app.namespace, name)["data"]


def wait_live(page):
    """The page's websocket is connected: from now on no change is missed."""
    expect(page.locator(".live-root[data-live=on]")).to_have_count(1)


def test_the_list_shows_applications_with_badges_tiles_and_filters(deployed, open_page, make_user,
                                                                   screenshot):
    billing = Application.objects.create(
        name="billing", project=deployed.project, repository=deployed.repository,
        cluster=deployed.cluster, namespace="billing", path="billing",
        sync_status="OutOfSync", health_status="Missing")
    page = open_page(make_user("root", superuser=True))
    row = page.locator(f"tr[data-app={deployed.name}]")
    expect(row.locator(".badge-synced")).to_contain_text("Synced")
    expect(row.locator(".badge-healthy")).to_contain_text("Healthy")
    expect(row).to_contain_text(deployed.synced_sha[:7])
    expect(page.locator("tr[data-app=billing] .badge-outofsync")).to_be_visible()
    wait_live(page)
    screenshot(page, "01-list")

    # Git has no folder "billing": its refresh fails, and the row says so without a reload.
    services.schedule_refresh(billing)
    expect(page.locator("tr[data-app=billing] .badge-unknown")).to_be_visible(timeout=LIVE)
    expect(page.locator("a[data-filter=sync-Unknown]")).to_contain_text("1")  # the summary too

    page.click("a[data-filter=health-Missing]")  # the summary bar filters
    expect(page).to_have_url(re.compile(r"/applications/\?health=Missing$"))
    expect(page.locator("tr[data-app]")).to_have_count(1)
    expect(page.locator("tr[data-app=billing]")).to_be_visible()
    page.go_back()
    expect(page.locator("tr[data-app]")).to_have_count(2)

    page.click("text=Tiles")
    expect(page.locator(f"li.tile[data-app={deployed.name}] .badge-healthy")).to_be_visible()
    screenshot(page, "02-tiles")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "03-tiles-phone")


def test_a_commit_turns_the_open_page_out_of_sync_then_synced_without_a_reload(
        deployed, open_page, make_user, screenshot):
    operator = make_user("olga", role="operator", project=deployed.project)
    page = open_page(operator)
    page.goto(f"/applications/{deployed.name}/")
    expect(page.locator("#app-status")).to_contain_text("Synced")
    expect(page.locator(".tree")).to_contain_text("ReplicaSet")  # owned children, from the cluster
    wait_live(page)
    page.evaluate("window.stillTheSamePage = true")

    deployed.repo.push(manifests(color="red"), message="Paint it red")
    services.schedule_refresh(deployed)  # as the poller or a webhook would; a worker runs it
    expect(page.locator("#app-status")).to_contain_text("OutOfSync", timeout=LIVE)
    settings_row = page.locator("li[data-resource='ConfigMap/settings']")
    expect(settings_row).to_contain_text("/data/color")
    screenshot(page, "04-app-out-of-sync")

    diff = page.context.new_page()
    diff.goto(settings_row.locator("a.res-name").get_attribute("href"))
    why = diff.locator("table.why tbody tr")
    expect(why).to_have_count(1)
    expect(why).to_contain_text('/data/color')
    expect(why.locator("td.del")).to_have_text('"blue"')
    expect(why.locator("td.add")).to_have_text('"red"')
    expect(diff.locator(".manifest .line.changed.add")).to_contain_text('color: "red"')
    web = page.locator("li[data-resource='Deployment/web'] a.res-name").get_attribute("href")
    deployment_page = page.context.new_page()
    deployment_page.goto(web)  # its Events, from the cluster
    expect(deployment_page.locator("#events-title + div")).to_contain_text("ScalingReplicaSet")
    screenshot(deployment_page, "05b-resource-events")
    deployment_page.close()
    screenshot(diff, "05-diff")
    diff.close()

    page.click("#open-sync")
    expect(page.locator("#sync-dialog")).to_be_visible()
    expect(page.locator("#sync-dialog")).to_contain_text("will be applied")
    screenshot(page, "06-sync-dialog", full_page=False)  # the modal's backdrop covers the viewport
    page.click("#sync-confirm")
    expect(page.locator("#sync-dialog")).to_be_hidden()
    expect(page.locator("#app-status")).to_contain_text("Synced", timeout=LIVE)
    expect(page.locator("section.operation")).to_contain_text("by olga", timeout=LIVE)  # ours
    expect(page.locator("section.operation")).to_contain_text("Succeeded", timeout=LIVE)
    assert page.evaluate("window.stillTheSamePage") is True  # no reload happened
    assert live_data(deployed, "settings") == {"color": "red"}
    screenshot(page, "07-app-synced")

    page.emulate_media(color_scheme="dark")
    screenshot(page, "08-app-dark")


def test_selective_sync_applies_only_the_ticked_resource(deployed, open_page, make_user):
    page = open_page(make_user("olga", role="operator", project=deployed.project))
    page.goto(f"/applications/{deployed.name}/")
    wait_live(page)
    deployed.repo.push(manifests(color="green", limit="99"), message="Two changes")
    services.schedule_refresh(deployed)
    expect(page.locator("#app-status")).to_contain_text("OutOfSync", timeout=LIVE)

    page.click("#open-sync")
    page.locator("#sync-dialog label", has_text="settings").locator("input").check()
    page.click("#sync-confirm")
    expect(page.locator("section.operation")).to_contain_text("by olga", timeout=LIVE)  # ours
    expect(page.locator("section.operation")).to_contain_text("Succeeded", timeout=LIVE)
    assert live_data(deployed, "settings") == {"color": "green"}
    assert live_data(deployed, "limits") == {"max": "10"}  # not ticked: untouched
    expect(page.locator("#app-status")).to_contain_text("OutOfSync")


def test_rollback_from_the_history_in_both_modes_restores_the_earlier_revision(
        deployed, open_page, make_user, screenshot):
    deployed.repo.push(manifests(color="green"), message="Green release")
    green = sync_now(deployed).synced_sha
    Application.objects.filter(pk=deployed.pk).update(automated=True)
    page = open_page(make_user("olga", role="operator", project=deployed.project))
    page.on("dialog", lambda dialog: dialog.accept())  # the confirmation naming what changes
    page.goto(f"/applications/{deployed.name}/history/")
    expect(page.locator("table.history tbody tr")).to_have_count(2)
    expect(page.locator("table.history")).to_contain_text("Green release")
    wait_live(page)
    screenshot(page, "09-history")

    # In Git: a revert commit to the first release; automated sync stays on and applies it.
    page.locator(f"tr[data-sha='{deployed.first_sha}']").get_by_role("button", name="Rollback in Git").click()
    assert until(lambda: live_data(deployed, "settings"), lambda d: d == {"color": "blue"},
                 timeout=60) == {"color": "blue"}
    expect(page.locator("table.history tbody tr")).to_have_count(3, timeout=LIVE)  # live
    expect(page.locator("table.history")).to_contain_text(f"Roll back {deployed.name}")
    app = Application.objects.get(pk=deployed.pk)
    assert app.automated and not app.pinned_revision

    # Pinned: the green commit is deployed again and automated sync is turned off.
    page.locator(f"tr[data-sha='{green}']").get_by_role("button", name="Rollback (pin)").click()
    assert until(lambda: live_data(deployed, "settings"), lambda d: d == {"color": "green"},
                 timeout=60) == {"color": "green"}
    expect(page.locator(".notice")).to_contain_text(f"Pinned to {green[:7]}", timeout=LIVE)
    app.refresh_from_db()
    assert app.pinned_revision == green and not app.automated
    screenshot(page, "10-history-after-rollbacks")


def test_a_viewer_sees_no_sync_button_and_the_api_and_websocket_refuse_them(
        deployed, open_page, make_user, screenshot):
    other = Project.objects.create(name="other")
    Application.objects.create(name="secret-app", project=other, repository=deployed.repository,
                               cluster=deployed.cluster, namespace="secret-app")
    viewer = make_user("vera", role="viewer", project=deployed.project)
    page = open_page(viewer)
    expect(page.locator("tr[data-app]")).to_have_count(1)  # the other project's app does not exist
    page.goto(f"/applications/{deployed.name}/")
    expect(page.locator("#app-status")).to_contain_text("Synced")
    expect(page.locator("#open-sync")).to_have_count(0)
    expect(page.get_by_role("button", name="Refresh")).to_have_count(0)
    expect(page.get_by_role("button", name="Delete")).to_have_count(0)
    screenshot(page, "11-app-as-viewer")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "12-app-phone")

    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    api = page.request.post(f"/api/applications/{deployed.name}/sync", data=json.dumps({}),
                            headers={"X-CSRFToken": token, "Content-Type": "application/json"})
    assert api.status == 403 and api.json()["detail"].startswith("vera may not sync")
    form = page.request.post(f"/applications/{deployed.name}/sync/", form={"csrfmiddlewaretoken": token},
                             headers={"X-CSRFToken": token}, max_redirects=0)
    assert form.status == 403
    # Refused: accepted, then closed at once with 4403 and no data (not 1006, which the page
    # could not tell from a dropped connection). Their own project's app stays open.
    subscribe = """(name) => new Promise((resolve) => {
        const socket = new WebSocket(`ws://${location.host}/ws/applications/${name}/`);
        let messages = 0;
        socket.onmessage = () => { messages += 1; };
        socket.onclose = (e) => resolve({code: e.code, messages});
        socket.onopen = () => setTimeout(() => { resolve("open"); socket.close(); }, 2000);
    })"""
    assert page.evaluate(subscribe, "secret-app") == {"code": 4403, "messages": 0}
    assert page.evaluate(subscribe, deployed.name) == "open"
    assert not deployed.operations.filter(initiated_by=viewer).exists()
