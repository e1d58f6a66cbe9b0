"""The new-application form, and the repositories, clusters, projects and API-token pages, in
headless Chromium against the real platform_parts (git server, cluster, web process, worker).

Screenshots go to $TMPDIR/gitops-ui-screenshots (see conftest.py)."""
import pytest
from playwright.sync_api import expect

from apps.applications.models import Application, Project
from apps.clusters import services as clusters
from apps.clusters.models import Cluster
from apps.repositories import services as repositories
from apps.repositories.models import Repository
from tests.appstack import DeployRepo
from tests.browser.test_dashboard import LIVE, manifests

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]


@pytest.fixture
def platform_parts(git_server, kube, tmp_path):
    """A repository and a cluster, registered and checked, with nothing deployed yet."""
    repo = DeployRepo(git_server, "forms-shop", tmp_path)
    repo.push(manifests(), message="First release")
    cluster = Cluster.objects.create(name="local", auth=Cluster.Auth.KUBECONFIG,
                                     kubeconfig=kube.kubeconfig_text())
    repository = Repository.objects.create(url=repo.url, username=git_server.username,
                                           password=git_server.password)
    assert clusters.check_connection(cluster) and repositories.check_connection(repository)
    Project.objects.get_or_create(name="default")
    return {"repo": repo, "cluster": cluster, "repository": repository}


def test_an_application_is_created_through_the_form_and_the_other_pages_show_the_platform(
        platform_parts, open_page, make_user, screenshot):
    page = open_page(make_user("root", superuser=True))
    page.click("text=+ New application")
    expect(page.locator("h1")).to_have_text("New application")
    page.fill("#id_name", "forms-shop")
    page.select_option("#id_project", "default")
    page.select_option("#id_repository", platform_parts["repository"].url)
    page.fill("#id_path", "../outside")
    page.select_option("#id_cluster", "local")
    page.fill("#id_namespace", "forms-shop")
    page.check("input[name=sync_options][value=CreateNamespace]")
    page.click("button:text('Create')")

    # refused, with the reason next to the path and everything typed still there
    expect(page.locator("#path-errors")).to_contain_text("leads outside the repository")
    expect(page.locator("#id_name")).to_have_value("forms-shop")
    expect(page.locator("#id_namespace")).to_have_value("forms-shop")
    expect(page.locator("#id_cluster")).to_have_value("local")
    expect(page.locator("input[value=CreateNamespace]")).to_be_checked()
    screenshot(page, "20-new-app-form-error")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "20b-new-app-form-error-phone", full_page=False)
    page.set_viewport_size({"width": 1280, "height": 860})

    page.fill("#id_path", "app")
    page.click("button:text('Create')")
    page.wait_for_url("**/applications/forms-shop/")
    expect(page.locator("#app-title")).to_have_text("forms-shop")
    # the worker's first refresh reaches the open page: Git has it, the cluster does not yet
    expect(page.locator("#app-status .badge-outofsync")).to_be_visible(timeout=LIVE)
    expect(page.locator(".tree")).to_contain_text("settings")
    assert Application.objects.get(name="forms-shop").sync_options == ["CreateNamespace=true"]
    screenshot(page, "21-new-app-page")

    page.click("text=App details")
    expect(page.locator("#id_path")).to_have_value("app")
    screenshot(page, "22-app-details")

    page.click("nav >> text=Repositories")
    row = page.locator(f"tr[data-repository='{platform_parts['repository'].url}']")
    expect(row.locator(".badge-successful")).to_be_visible()
    expect(page.locator("#webhook-url")).to_contain_text("/api/webhook/git")
    screenshot(page, "23-repositories")

    page.click("nav >> text=Clusters")
    row = page.locator("tr[data-cluster=local]")
    expect(row.locator(".badge-successful")).to_be_visible()
    expect(row).to_contain_text(platform_parts["cluster"].server_version or "v1.")
    screenshot(page, "24-clusters")

    page.click("nav >> text=Projects")
    page.click("tr[data-project=default] a")
    expect(page.locator("tr[data-app=forms-shop]")).to_be_visible()
    make_user("vera")
    page.fill("input[name=new_user]", "vera")
    page.select_option("select[name=new_role]", "operator")
    page.click("text=Save members")
    expect(page.locator("tr[data-member=vera] select")).to_have_value("operator")
    screenshot(page, "25-project")

    page.click("nav >> text=Tokens")
    page.click("text=+ Create token")
    expect(page.locator("#new-token code.token")).to_be_visible()
    expect(page.locator("tr[data-token]")).to_have_count(1)
    screenshot(page, "26-tokens")
    page.goto("/account/tokens")
    expect(page.locator("#new-token")).to_have_count(0)  # shown once
    expect(page.locator("tr[data-token]")).to_have_count(1)
