"""A repository's page: its webhook URL and whether a secret is set (never the secret), the
GitLab link (linked and unlinked from the page by platform admins, against the GitLab API
emulator), the applications and builds that use it, and its tag rules, which a project's admins
add, edit and delete through the page's forms (checked as the model checks them, audited) while
viewers see no control and are refused anyway. Django's test client on PostgreSQL."""
import html

import pytest
from django.test import Client

from apps.applications.models import Project, ProjectMember
from apps.audit.models import AuditEntry
from apps.builds.models import DEFAULT_EXECUTOR_IMAGE, Build, TagRule
from apps.clusters.models import Cluster
from apps.registries.models import Registry
from apps.repositories.models import Repository
from tests.applications.factories import make_app
from tests.browser.conftest import (browser, open_page, platform, screenshot,  # noqa: F401
                                    make_user)
from tests.localstack.gitlab import GitLabEmulator

pytestmark = pytest.mark.django_db

HOOK_SECRET = "hook-s3cret-never-shown-7d2"
GIT_PASSWORD = "git-pa55word-never-shown-41"
GITLAB_TOKEN = "glpat-never-shown-9c0ffee"
PUBLIC_URL = "https://gitops.example.test"


@pytest.fixture
def site(db, django_user_model, settings):
    """Repository `deploy` (its own webhook secret, a password, a GitLab token), used by an
    application and a build of project `shop`; `lead` administers `shop`, `vera` views it,
    `otto` administers project `other` only; `root` is a platform admin."""
    settings.GITOPS_UI_PUBLIC_URL = PUBLIC_URL
    shop, other = Project.objects.create(name="shop"), Project.objects.create(name="other")
    repo = Repository.objects.create(
        url="https://git.example.test/team/deploy.git", username="ci", password=GIT_PASSWORD,
        webhook_secret=HOOK_SECRET, gitlab_url="https://gitlab.example.test",
        gitlab_project="team/deploy", gitlab_token=GITLAB_TOKEN)
    registry = Registry.objects.create(name="harbor", url="https://harbor.example.test",
                                       password="registry-pw-never-shown")
    cluster = Cluster.objects.create(name="prod", server="https://127.0.0.1:1", token="t")
    make_app("web", shop, repo, cluster)
    make_app("billing", other, repo, cluster)
    rule = TagRule.objects.create(repository=repo, project=shop, registry=registry,
                                  action="push", pattern="release-*")
    hidden = TagRule.objects.create(repository=repo, project=other, registry=registry,
                                    pattern="other-*")
    build = Build.objects.create(repository=repo, project=shop, rule=rule, action="push",
                                 sha="ab" * 20, tag="release-1.0", inputs_key="k",
                                 image="harbor.example.test/shop/deploy:1.0", trigger="webhook")
    users = {"root": django_user_model.objects.create_superuser("root", password="pw")}
    for name, project, role in (("lead", shop, "admin"), ("vera", shop, "viewer"),
                                ("otto", other, "admin")):
        users[name] = django_user_model.objects.create_user(name, password="pw")
        ProjectMember.objects.create(project=project, user=users[name], role=role)
    return {"repo": repo, "registry": registry, "shop": shop, "other": other, "rule": rule,
            "hidden": hidden, "build": build, "users": users}


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page_of(client, repo) -> str:
    response = client.get(f"/repositories/{repo.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def rule_form(site, **typed) -> dict:
    values = {"action": "build", "pattern": "build-*", "project": site["shop"].pk,
              "registry": site["registry"].pk,
              "image_template": "{registry}/{project}/{name}:{version}",
              "image_name": "", "dockerfile": "Dockerfile", "context": ".", "build_args": "",
              "platform": "", "backend": "buildah", "build_cluster": "", "build_namespace": "",
              "executor_image": DEFAULT_EXECUTOR_IMAGE, "build_node_selector": "",
              "build_tolerations": "", "enabled": "on"}
    values.update(typed)
    return {k: v for k, v in values.items() if v is not None}


def test_the_page_shows_the_webhook_url_and_whether_a_secret_is_set_never_a_secret(site, settings):
    repo, users = site["repo"], site["users"]
    for user in users.values():
        page = page_of(client_for(user), repo)
        assert f'id="webhook-url">{PUBLIC_URL}/api/webhook/git<' in page
        secret = page.split('id="webhook-secret">')[1].split("</dd>")[0]
        assert "secret set" in secret and "no secret" not in secret
        for value in (HOOK_SECRET, GIT_PASSWORD, GITLAB_TOKEN, "registry-pw-never-shown"):
            assert value not in page
    # the list links each repository to its page
    listing = client_for(users["vera"]).get("/repositories/").content.decode()
    assert f'href="/repositories/{repo.pk}/"' in listing

    # no secret of its own and none for the platform: said so, and that tags are refused
    settings.GITOPS_UI_WEBHOOK_SECRET = ""
    Repository.objects.filter(pk=repo.pk).update(webhook_secret="")
    page = page_of(client_for(users["vera"]), repo)
    assert "no secret" in page.split('id="webhook-secret">')[1].split("</dd>")[0]
    assert "Tags that match a rule are refused until a secret is set" in page
    # without GITOPS_UI_PUBLIC_URL: the address the browser used
    settings.GITOPS_UI_PUBLIC_URL = ""
    page = page_of(client_for(users["vera"]), repo)
    assert 'id="webhook-url">http://testserver/api/webhook/git<' in page


def test_the_page_links_the_applications_builds_and_rules_the_user_may_see(site):
    repo, users = site["repo"], site["users"]
    page = page_of(client_for(users["vera"]), repo)
    assert 'href="/applications/web/"' in page and "billing" not in page  # another project's
    assert f'href="/builds/{site["build"].pk}/"' in page and "release-1.0" in page
    assert f'data-rule="{site["rule"].pk}"' in page and "release-*" in page
    assert f'data-rule="{site["hidden"].pk}"' not in page and "other-*" not in page
    everything = page_of(client_for(users["root"]), repo)
    assert 'href="/applications/billing/"' in everything and "other-*" in everything
    assert client_for(users["vera"]).get("/repositories/999999/").status_code == 404


def test_a_project_admin_adds_a_rule_through_the_form_and_it_is_on_the_page(site):
    repo, lead = site["repo"], site["users"]["lead"]
    client = client_for(lead)
    page = page_of(client, repo)
    assert 'id="add-rule"' in page
    form = client.get(f"/repositories/{repo.pk}/tag-rules/new/").content.decode()
    assert 'name="csrfmiddlewaretoken"' in form
    # only the projects the user administers are offered
    assert f'<option value="{site["shop"].pk}">shop</option>' in form
    assert f'value="{site["other"].pk}"' not in form

    response = client.post(f"/repositories/{repo.pk}/tag-rules/new/", rule_form(
        site, pattern="re:^v(?P<version>\\d+\\.\\d+\\.\\d+)$", dockerfile="docker/Dockerfile.web",
        context="docker", build_args='{"VERSION": "2"}', platform="linux/amd64"))
    assert response.status_code == 302
    assert response.headers["Location"] == f"/repositories/{repo.pk}/"
    rule = TagRule.objects.get(repository=repo, dockerfile="docker/Dockerfile.web")
    assert (rule.project, rule.action, rule.build_args, rule.enabled) == (site["shop"], "build",
                                                                          {"VERSION": "2"}, True)
    page = html.unescape(client.get(f"/repositories/{repo.pk}/").content.decode())
    row = page.split(f'data-rule="{rule.pk}"')[1].split("</tr>")[0]
    assert r"re:^v(?P<version>\d+\.\d+\.\d+)$" in row and "docker/Dockerfile.web" in row
    assert "Added the tag rule" in page
    entry = AuditEntry.objects.get(action="tagrule.created", object_id=str(rule.pk))
    assert entry.actor_name == "lead" and entry.project_name == "shop"
    assert entry.details["dockerfile"] == "docker/Dockerfile.web"

    # an admin of another project cannot put a rule in shop: the choice is refused
    refused = client_for(site["users"]["otto"]).post(f"/repositories/{repo.pk}/tag-rules/new/",
                                                     rule_form(site, pattern="sneaky-*"))
    assert refused.status_code == 400 and "project-errors" in refused.content.decode()
    assert not TagRule.objects.filter(pattern="sneaky-*").exists()


@pytest.mark.parametrize("typed, field, message", [
    ({"pattern": "re:v(unclosed"}, "pattern", "not a regular expression"),
    ({"image_template": "{registry}/{team}/{name}:{version}"}, "image_template",
     "unknown placeholder {team}"),
    ({"dockerfile": "../Dockerfile"}, "dockerfile", "must stay inside the repository"),
    ({"build_args": '{"API_TOKEN": "x"}'}, "build_args", "looks like a secret"),
    ({"build_args": "{not json"}, "build_args", "Enter a valid JSON"),
])
def test_an_invalid_rule_shows_the_field_error_and_keeps_what_was_typed(site, typed, field,
                                                                       message):
    repo = site["repo"]
    client = client_for(site["users"]["lead"])
    before = TagRule.objects.count()
    response = client.post(f"/repositories/{repo.pk}/tag-rules/new/", rule_form(
        site, context="web/app", image_name="webshop", **typed))
    assert response.status_code == 400
    page = html.unescape(response.content.decode())
    assert message in page.split(f'id="{field}-errors"')[1].split("</ul>")[0]
    assert "Not saved: correct the field marked below." in page
    for name, value in {"context": "web/app", "image_name": "webshop", **typed}.items():
        assert f'value="{value}"' in page or f">\n{value}</textarea>" in page, name
    assert f'<option value="{site["shop"].pk}" selected>shop</option>' in page
    assert TagRule.objects.count() == before


def test_a_kaniko_rule_without_its_build_cluster_is_refused_on_that_field(site):
    repo = site["repo"]
    response = client_for(site["users"]["lead"]).post(
        f"/repositories/{repo.pk}/tag-rules/new/",
        rule_form(site, pattern="kaniko-*", backend="kaniko", build_namespace="builds"))
    assert response.status_code == 400
    page = html.unescape(response.content.decode())
    field = page[page.index('name="build_cluster"'):]
    assert "a kaniko build runs as a Job in a cluster" in field[:2000]
    assert 'value="kaniko-*"' in page  # what was typed is kept
    assert not TagRule.objects.filter(pattern="kaniko-*").exists()


def test_a_viewer_sees_no_controls_and_is_refused_every_change(site):
    repo, rule = site["repo"], site["rule"]
    viewer = client_for(site["users"]["vera"])
    page = page_of(viewer, repo)
    assert 'id="add-rule"' not in page and "tag-rules/new" not in page
    assert f"tag-rules/{rule.pk}/" not in page and ">Delete<" not in page and ">Edit<" not in page
    assert "Link to GitLab" not in page and "Check now" not in page
    for method, url, body in (
            ("get", f"/repositories/{repo.pk}/tag-rules/new/", None),
            ("post", f"/repositories/{repo.pk}/tag-rules/new/", rule_form(site)),
            ("get", f"/repositories/{repo.pk}/tag-rules/{rule.pk}/", None),
            ("post", f"/repositories/{repo.pk}/tag-rules/{rule.pk}/",
             rule_form(site, pattern="x-*")),
            ("post", f"/repositories/{repo.pk}/tag-rules/{rule.pk}/delete/", {}),
            ("post", f"/repositories/{repo.pk}/gitlab-link/", {}),
            ("post", f"/repositories/{repo.pk}/check/", {})):
        response = getattr(viewer, method)(url, body)
        assert response.status_code == 403, url
        assert response.content.decode().startswith("vera may not ")
    rule.refresh_from_db()
    assert rule.pattern == "release-*" and TagRule.objects.count() == 2
    assert not AuditEntry.objects.filter(object_type="tagrule").exists()
    # another project's rule is not even there for a project admin of shop
    lead = client_for(site["users"]["lead"])
    assert lead.get(f"/repositories/{repo.pk}/tag-rules/{site['hidden'].pk}/").status_code == 404
    hidden = site["hidden"].pk
    assert lead.post(f"/repositories/{repo.pk}/tag-rules/{hidden}/delete/").status_code == 404


def test_a_project_admin_edits_and_deletes_a_rule(site):
    repo, rule = site["repo"], site["rule"]
    client = client_for(site["users"]["lead"])
    page = page_of(client, repo)
    assert f'href="/repositories/{repo.pk}/tag-rules/{rule.pk}/"' in page
    form = client.get(f"/repositories/{repo.pk}/tag-rules/{rule.pk}/").content.decode()
    assert 'value="release-*"' in form and 'value="push" selected' in form

    response = client.post(f"/repositories/{repo.pk}/tag-rules/{rule.pk}/",
                           rule_form(site, action="push", pattern="ship-*", enabled=None))
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.pattern, rule.enabled) == ("ship-*", False)
    entry = AuditEntry.objects.get(action="tagrule.updated", object_id=str(rule.pk))
    assert entry.actor_name == "lead"
    assert entry.details["changed"]["pattern"] == {"from": "release-*", "to": "ship-*"}

    response = client.post(f"/repositories/{repo.pk}/tag-rules/{rule.pk}/delete/")
    assert response.status_code == 302
    assert not TagRule.objects.filter(pk=rule.pk).exists()
    page = page_of(client, repo)
    assert f'data-rule="{rule.pk}"' not in page and "Deleted the tag rule ship-*" in page
    assert Build.objects.filter(pk=site["build"].pk).exists()  # its builds stay
    entry = AuditEntry.objects.get(action="tagrule.deleted")
    assert (entry.actor_name, entry.object_name, entry.project_name) == ("lead", "ship-* → push",
                                                                         "shop")
    assert client.get(f"/repositories/{repo.pk}/tag-rules/{rule.pk}/delete/").status_code == 405


def test_with_no_rules_the_page_says_what_to_do(site):
    TagRule.objects.all().delete()
    lead = page_of(client_for(site["users"]["lead"]), site["repo"])
    assert "No tag rules: tags of this repository start no build." in lead and "Add one" in lead
    viewer = page_of(client_for(site["users"]["vera"]), site["repo"])
    assert "A project admin can add one" in viewer
    Build.objects.all().delete()
    Registry.objects.all().delete()
    lead = page_of(client_for(site["users"]["lead"]), site["repo"])
    assert "First a platform admin registers a registry" in lead and 'id="add-rule"' not in lead


@pytest.fixture
def gitlab_server():
    emulator = GitLabEmulator().start()
    yield emulator
    emulator.stop()


def test_a_platform_admin_links_and_unlinks_gitlab_from_the_page(site, gitlab_server):
    project = gitlab_server.add_project("team/deploy")
    repo = site["repo"]
    Repository.objects.filter(pk=repo.pk).update(gitlab_url=gitlab_server.url)
    repo.refresh_from_db()
    repo.gitlab_token = gitlab_server.add_token(["api"])
    repo.save()
    root = client_for(site["users"]["root"])
    assert "Link to GitLab" in page_of(root, repo)
    assert "Link to GitLab" not in page_of(client_for(site["users"]["lead"]), repo)

    assert root.post(f"/repositories/{repo.pk}/gitlab-link/").status_code == 302
    [hook] = gitlab_server.project_hooks(project["id"])
    assert hook["url"] == f"{PUBLIC_URL}/api/webhook/git" and hook["token"] == HOOK_SECRET
    page = page_of(root, repo)
    state = page.split('id="gitlab-state"')[1].split("</dl>")[0]
    assert "linked" in state and f"present (hook {hook['id']})" in state
    assert "Unlink" in page and "Link again" in page and repo.gitlab_token not in page

    assert root.post(f"/repositories/{repo.pk}/gitlab-unlink/").status_code == 302
    assert gitlab_server.project_hooks(project["id"]) == []
    state = page_of(root, repo).split('id="gitlab-state"')[1].split("</dl>")[0]
    assert "not linked" in state and "none made by us" in state
    assert [e.action for e in AuditEntry.objects.filter(action__startswith="repository.gitlab")
            .order_by("pk")] == ["repository.gitlab_linked", "repository.gitlab_unlinked"]


@pytest.mark.django_db(transaction=True)  # the web process reads what the test writes
@pytest.mark.timeout(300)
def test_the_page_and_its_form_in_a_browser(site, open_page, make_user, screenshot):
    """Headless Chromium against the web process: a project admin opens the repository from
    the list, adds a rule with a bad pattern (the error shows, what was typed stays), fixes it
    and finds it in the table. Screenshots: light, dark and phone width."""
    from playwright.sync_api import expect

    repo = site["repo"]
    lead = make_user("lena", role="admin", project=site["shop"])
    page = open_page(lead)
    page.click("nav >> text=Repositories")
    page.click(f"tr[data-repository='{repo.url}'] a")
    expect(page.locator("#repo-title")).to_have_text(repo.url)
    expect(page.locator("#webhook-secret")).to_contain_text("secret set")
    screenshot(page, "23b-repository")

    page.click("#add-rule")
    page.fill("#id_pattern", "re:v(unclosed")
    page.fill("#id_context", "web/app")
    page.select_option("#id_project", label="shop")
    page.select_option("#id_registry", label="harbor")
    page.click("button:text('Add rule')")
    expect(page.locator("#pattern-errors")).to_contain_text("not a regular expression")
    expect(page.locator("#id_pattern")).to_have_value("re:v(unclosed")
    expect(page.locator("#id_context")).to_have_value("web/app")
    screenshot(page, "23c-tag-rule-form-error")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "23d-tag-rule-form-phone", full_page=False)
    page.set_viewport_size({"width": 1280, "height": 860})

    page.fill("#id_pattern", "re:^v(?P<version>.+)$")
    page.click("button:text('Add rule')")
    page.wait_for_url(f"**/repositories/{repo.pk}/")
    rule = TagRule.objects.get(pattern="re:^v(?P<version>.+)$")
    expect(page.locator(f"tr[data-rule='{rule.pk}']")).to_contain_text("web/app")
    page.emulate_media(color_scheme="dark")
    screenshot(page, "23e-repository-dark")
    page.emulate_media(color_scheme="light")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "23f-repository-phone")
