"""The registry pages: the list (every registry, never a credential) and a registry's page,
whose images fragment reads the stack's real registry (tags) or the Harbor emulator in front of
it (artifacts and their scan summary) for the repositories our succeeded push builds left
there, as far as the user may see those builds; a registry that does not answer is a message
on the page. Django's test client on PostgreSQL, then the two pages in Chromium."""
import pytest
from django.test import Client
from django.utils import timezone

from apps.applications.models import Project, ProjectMember
from apps.builds.models import Build, TagRule
from apps.registries import images as registry_images
from apps.registries import services
from apps.registries.models import Registry
from apps.repositories.models import Repository
from tests.browser.conftest import (browser, free_port, open_page, platform,  # noqa: F401
                                    screenshot, make_user)

from .conftest import HARBOR_PROJECT, REPOSITORY

pytestmark = pytest.mark.django_db

HIDDEN_REPOSITORY = "secret-team/tool"


@pytest.fixture
def site(db, django_user_model, registry, images):
    """Registry `local` (the stack's, its real password) with build #a of project `shop`
    that pushed regtest/busybox:1.1 and a build of project `other` that pushed secret-team/tool;
    `vera` views `shop` only, `root` is a platform admin."""
    shop, other = Project.objects.create(name="shop"), Project.objects.create(name="other")
    local = Registry.objects.create(name="local", url=registry.url, username=registry.username,
                                    password=registry.password)
    repo = Repository.objects.create(url="https://git.example.test/team/app.git")
    pushed = push_build(repo, shop, local, f"{registry.host}/{REPOSITORY}:1.1",
                        images[f"{REPOSITORY}:1.1"])
    hidden = push_build(repo, other, local, f"{registry.host}/{HIDDEN_REPOSITORY}:1.0",
                        "sha256:" + "0" * 64)
    users = {"root": django_user_model.objects.create_superuser("root", password="pw"),
             "vera": django_user_model.objects.create_user("vera", password="pw")}
    ProjectMember.objects.create(project=shop, user=users["vera"], role="viewer")
    return {"registry": local, "repo": repo, "shop": shop, "other": other, "pushed": pushed,
            "hidden": hidden, "users": users, "stack": registry}


def push_build(repo, project, registry, image, digest, status="succeeded") -> Build:
    rule = TagRule.objects.create(repository=repo, project=project, registry=registry,
                                  action="push", pattern=f"push-{project.name}-*")
    return Build.objects.create(repository=repo, project=project, rule=rule, action="push",
                                sha="ab" * 20, tag="push-1.1", inputs_key="k", image=image,
                                digest=digest, size=4_321_000, status=status,
                                finished_at=timezone.now(), trigger="webhook")


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def get(client, url) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.content[:2000]
    return response.content.decode()


def test_the_list_shows_every_registry_and_never_a_credential(site):
    Registry.objects.create(name="harbor", kind="harbor", url="https://harbor.example.test",
                            username="robot$ci", password="harbor-pw-never-shown",
                            verify_tls=False, webhook_token="hook-token-never-shown")
    for name in ("vera", "root"):
        page = get(client_for(site["users"][name]), "/registries/")
        assert 'data-registry="local"' in page and 'data-registry="harbor"' in page
        assert site["registry"].url in page and "Harbor" in page and "not verified" in page
        assert "plain HTTP" in row_of(page, "local")
        assert 'href="/registries/"' in page  # the nav link
        for secret in (site["stack"].password, "harbor-pw-never-shown", "hook-token-never-shown"):
            assert secret not in page
    # vera sees one image pushed to `local` (shop's), root two (other's as well).
    vera = get(client_for(site["users"]["vera"]), "/registries/")
    root = get(client_for(site["users"]["root"]), "/registries/")
    assert row_of(vera, "local").endswith('<td class="images-count">1</td>')
    assert row_of(root, "local").endswith('<td class="images-count">2</td>')


def row_of(page: str, name: str) -> str:
    row = page.split(f'data-registry="{name}"', 1)[1].split("</tr>", 1)[0]
    return row.strip()


def test_the_images_fragment_shows_the_pushed_repository_its_tags_and_builds(site, images):
    client = client_for(site["users"]["vera"])
    page = get(client, f"/registries/{site['registry'].pk}/")
    assert 'hx-get="/registries/%d/images/"' % site["registry"].pk in page
    fragment = get(client, f"/registries/{site['registry'].pk}/images/")
    image = fragment.split(f'data-image="{REPOSITORY}"', 1)[1].split("</article>", 1)[0]
    # The registry's tags, the pushed one first, and the build that pushed it with its digest.
    assert [t.split("<", 1)[0] for t in image.split('<span class="pill mono">')[1:]] \
        == ["1.1", "2.0", "1.0"]
    assert f'href="/builds/{site["pushed"].pk}/"' in image
    assert images[f"{REPOSITORY}:1.1"][:19] in image and "4.1\xa0MB" in image
    assert "registry-error" not in fragment
    assert site["stack"].password not in page and site["stack"].password not in fragment


def test_the_tags_shown_are_bounded_with_a_note_of_how_many_more(site, monkeypatch):
    monkeypatch.setattr(registry_images, "MAX_TAGS", 2)
    fragment = get(client_for(site["users"]["vera"]), f"/registries/{site['registry'].pk}/images/")
    image = fragment.split(f'data-image="{REPOSITORY}"', 1)[1].split("</article>", 1)[0]
    assert [t.split("<", 1)[0] for t in image.split('<span class="pill mono">')[1:]] \
        == ["1.1", "2.0"]
    assert "and 1 more" in image


def test_a_user_who_may_not_see_a_build_does_not_see_its_image(site):
    vera, root = client_for(site["users"]["vera"]), client_for(site["users"]["root"])
    url = f"/registries/{site['registry'].pk}/images/"
    assert HIDDEN_REPOSITORY not in get(vera, url)
    assert HIDDEN_REPOSITORY not in get(vera, f"/registries/{site['registry'].pk}/")
    fragment = get(root, url)
    # root sees it too; the registry has no such repository, which is said on the image alone.
    hidden = fragment.split(f'data-image="{HIDDEN_REPOSITORY}"', 1)[1].split("</article>", 1)[0]
    assert "image-error" in hidden and "not found" in hidden
    assert 'data-image="%s"' % REPOSITORY in fragment


def test_a_failed_build_pushed_nothing_and_with_no_image_the_page_says_what_to_do(site):
    Build.objects.filter(pk=site["pushed"].pk).update(status="failed")
    page = get(client_for(site["users"]["vera"]), f"/registries/{site['registry'].pk}/")
    assert "hx-get" not in page.split('id="images"', 1)[1]
    assert "add a tag rule with the action <i>push</i>" in page


def test_an_unreachable_registry_shows_its_error_and_the_rest_of_the_page(site):
    Registry.objects.filter(pk=site["registry"].pk).update(url=f"http://127.0.0.1:{free_port()}")
    client = client_for(site["users"]["root"])
    page = get(client, f"/registries/{site['registry'].pk}/")
    assert "Check now" in page
    fragment = get(client, f"/registries/{site['registry'].pk}/images/")
    assert 'id="registry-error"' in fragment and "cannot reach local" in fragment
    assert f'href="/builds/{site["pushed"].pk}/"' in fragment  # what our builds recorded
    # Check now records the failure; the page then shows it.
    response = client.post(f"/registries/{site['registry'].pk}/check/", follow=True)
    assert response.status_code == 200
    assert "local did not answer" in response.content.decode()
    assert Registry.objects.get(pk=site["registry"].pk).connection_status == "Failed"


def test_only_platform_admins_check_a_connection_and_anonymous_goes_to_login(site):
    vera = client_for(site["users"]["vera"])
    page = get(vera, f"/registries/{site['registry'].pk}/")
    assert "Check now" not in page
    assert vera.post(f"/registries/{site['registry'].pk}/check/").status_code == 403
    assert Registry.objects.get(pk=site["registry"].pk).connection_status == ""
    for url in ("/registries/", f"/registries/{site['registry'].pk}/",
                f"/registries/{site['registry'].pk}/images/"):
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert vera.get("/registries/999999/").status_code == 404


@pytest.fixture
def harbor_site(site, harbor, images):
    """Registry `harbor` (the emulator) with a build that pushed team/web:2.0, which a scanner
    found 3 vulnerabilities in, while team/web:1.0 was never scanned."""
    registry = Registry.objects.create(name="harbor", kind="harbor", url=harbor.url,
                                       username=harbor.username, password=harbor.password)
    services.ensure_harbor_project(registry, HARBOR_PROJECT)
    scanned = images[f"{HARBOR_PROJECT}/web:2.0"]
    harbor.scan_reports[scanned] = {"scan_status": "Success", "severity": "High", "summary": {
        "total": 3, "fixable": 1, "summary": {"High": 1, "Low": 2}}}
    build = push_build(site["repo"], site["shop"], registry,
                       f"{registry.host}/{HARBOR_PROJECT}/web:2.0", scanned)
    return {"registry": registry, "build": build, "scanned": scanned,
            "unscanned": images[f"{HARBOR_PROJECT}/web:1.0"]}


def test_a_harbor_registry_shows_its_artifacts_with_the_scan_summary(site, harbor_site, harbor):
    client = client_for(site["users"]["vera"])
    fragment = get(client, f"/registries/{harbor_site['registry'].pk}/images/")
    image = fragment.split(f'data-image="{HARBOR_PROJECT}/web"', 1)[1].split("</article>", 1)[0]
    scanned = image.split(f'data-digest="{harbor_site["scanned"]}"', 1)[1].split("</tr>", 1)[0]
    unscanned = image.split(f'data-digest="{harbor_site["unscanned"]}"', 1)[1] \
        .split("</tr>", 1)[0]
    assert "High" in scanned and "3 vulnerabilities, 1 fixable" in scanned
    assert "Low 2" in scanned and ">2.0<" in scanned
    assert "not scanned" in unscanned and "1.0" in unscanned
    assert f'href="/builds/{harbor_site["build"].pk}/"' in image
    assert harbor.password not in fragment


@pytest.mark.django_db(transaction=True)  # the web process reads what the test writes
@pytest.mark.timeout(300)
def test_both_pages_in_a_browser(site, harbor_site, open_page, make_user, screenshot):
    """Headless Chromium against the web process: a platform admin goes from the nav to the
    list, opens the Harbor registry (its artifacts arrive after the page, with the scan
    summary) and the plain one. Screenshots: wide and phone width."""
    root = make_user("admin-r", superuser=True)
    page = open_page(root)
    page.click("nav >> text=Registries")
    page.wait_for_selector('tr[data-registry="harbor"]')
    screenshot(page, "25a-registries")
    page.click('tr[data-registry="harbor"] a')
    page.wait_for_selector("#registry-images")
    assert page.locator(f'[data-digest="{harbor_site["scanned"]}"] .scan').inner_text() \
        .startswith("High")
    screenshot(page, "25b-registry-harbor")
    page.goto(f"/registries/{site['registry'].pk}/")
    page.wait_for_selector("#registry-images")
    screenshot(page, "25c-registry-local")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "25d-registry-local-phone")
    page.set_viewport_size({"width": 1280, "height": 860})
    Registry.objects.filter(pk=site["registry"].pk).update(url=f"http://127.0.0.1:{free_port()}")
    page.goto(f"/registries/{site['registry'].pk}/")
    page.wait_for_selector("#registry-error")
    assert page.locator("#registry-images [data-build]").count() == 2
    screenshot(page, "25e-registry-unreachable")
