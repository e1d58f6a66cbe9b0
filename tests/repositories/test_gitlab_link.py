"""Linking a repository to its GitLab project, against an emulator of GitLab's REST API v4
(tests/localstack/gitlab.py; GitLab cannot run here): the token's scope is checked, one project
webhook is made (and kept one on every re-link), unlinking removes it, builds report commit
statuses, and the token is encrypted at rest and shown nowhere."""
import html
import logging

import pytest
from django.db import connection
from django.test import Client

from apps.audit.models import AuditEntry
from apps.repositories import gitlab
from apps.repositories.models import Repository
from tests.localstack.gitlab import GitLabEmulator

pytestmark = pytest.mark.django_db

PUBLIC_URL = "https://gitops.example.test"
HOOK_URL = PUBLIC_URL + "/api/webhook/git"
SHA = "3f786850e387550fdab836ed7e6dc881de23001b"


@pytest.fixture
def gitlab_server():
    emulator = GitLabEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture
def project(gitlab_server):
    return gitlab_server.add_project("team/deploy")


@pytest.fixture
def token(gitlab_server, project):
    return gitlab_server.add_token(["api"])


@pytest.fixture(autouse=True)
def public_url(settings):
    settings.GITOPS_UI_PUBLIC_URL = PUBLIC_URL


@pytest.fixture
def repo(admin_client, gitlab_server, token) -> Repository:
    response = admin_client.post("/api/repositories/", {
        "url": "https://gitlab.example.test/team/deploy.git", "gitlab_url": gitlab_server.url,
        "gitlab_project": "team/deploy", "gitlab_token": token}, content_type="application/json")
    assert response.status_code == 201, response.content
    return Repository.objects.get(pk=response.json()["id"])


def link(client, repo, **body):
    return client.post(f"/api/repositories/{repo.pk}/gitlab-link", body,
                       content_type="application/json")


def stored_rows() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM repositories_repository")
        return repr(cursor.fetchall()) + repr(list(AuditEntry.objects.values()))


def test_linking_makes_one_webhook_and_linking_again_keeps_it_one(
        admin_client, repo, gitlab_server, project):
    answer = link(admin_client, repo)
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["gitlab_status"] == "Linked" and body["gitlab_message"] == ""
    assert body["gitlab_project_id"] == project["id"]
    repo.refresh_from_db()
    assert repo.webhook_secret  # made for the hook, as the repository had none
    [hook] = gitlab_server.project_hooks(project["id"])
    assert hook["url"] == HOOK_URL and hook["token"] == repo.webhook_secret
    assert hook["push_events"] and hook["tag_push_events"] and hook["enable_ssl_verification"]
    assert body["gitlab_hook_id"] == hook["id"]
    page = admin_client.get("/repositories/").content.decode()
    assert "linked</span> team/deploy" in page

    # Again, with the hook edited in GitLab meanwhile: updated in place, not a second one.
    gitlab_server.hooks[project["id"]][hook["id"]]["tag_push_events"] = False
    assert link(admin_client, repo).status_code == 200
    [again] = gitlab_server.project_hooks(project["id"])
    assert again["id"] == hook["id"] and again["tag_push_events"] is True

    # A link forgotten on our side finds its hook by URL, and removes copies of it.
    Repository.objects.filter(pk=repo.pk).update(gitlab_hook_id=None)
    gitlab_server.hooks[project["id"]][999] = {**hook, "id": 999}
    assert link(admin_client, repo).status_code == 200
    assert [h["id"] for h in gitlab_server.project_hooks(project["id"])] == [hook["id"]]
    assert AuditEntry.objects.filter(action="repository.gitlab_linked").count() == 3
    # python-gitlab sent the token as GitLab's PRIVATE-TOKEN header.
    assert all(headers.get("private-token") for _, _, headers in gitlab_server.requests)


def test_a_numeric_project_id_and_an_existing_webhook_secret_are_used(
        admin_client, repo, gitlab_server, project):
    repo.webhook_secret = "own-secret-kept"
    repo.save()
    assert link(admin_client, repo, gitlab_project=str(project["id"])).status_code == 200
    [hook] = gitlab_server.project_hooks(project["id"])
    assert hook["token"] == "own-secret-kept"


def test_a_token_without_the_api_scope_is_refused_naming_it(admin_client, repo, gitlab_server,
                                                            project):
    weak = gitlab_server.add_token(["read_api", "read_repository"])
    answer = link(admin_client, repo, gitlab_token=weak)
    assert answer.status_code == 502
    body = answer.json()
    assert body["gitlab_status"] == "Failed"
    assert "lacks the scope 'api'" in body["gitlab_message"]
    assert "read_api, read_repository" in body["gitlab_message"]
    assert gitlab_server.project_hooks(project["id"]) == []


@pytest.mark.parametrize("change, message", [
    ({"gitlab_project": "team/absent"}, "find the project 'team/absent': not found"),
    ({"gitlab_token": "glpat-wrong-never-shown"}, "refused the token (401)"),
])
def test_an_unknown_project_or_a_wrong_token_fails_with_the_cause(
        admin_client, repo, change, message):
    answer = link(admin_client, repo, **change)
    assert answer.status_code == 502
    assert message in answer.json()["gitlab_message"]
    assert "glpat-wrong-never-shown" not in answer.content.decode()
    page = html.unescape(admin_client.get("/repositories/").content.decode())
    assert "link failed" in page and message in page


def test_a_token_that_may_not_administer_the_project_is_told_so(admin_client, repo,
                                                                gitlab_server):
    other = gitlab_server.add_token(["api"], maintainer_of=[])
    answer = link(admin_client, repo, gitlab_token=other)
    assert answer.status_code == 502 and "(403;" in answer.json()["gitlab_message"]


def test_without_a_public_url_linking_says_what_to_set(admin_client, repo, settings,
                                                       gitlab_server, project):
    settings.GITOPS_UI_PUBLIC_URL = ""
    answer = link(admin_client, repo)
    assert answer.status_code == 502 and "GITOPS_UI_PUBLIC_URL" in answer.json()["gitlab_message"]
    assert gitlab_server.project_hooks(project["id"]) == []


def test_unlinking_deletes_the_webhook(admin_client, repo, gitlab_server, project):
    assert link(admin_client, repo).status_code == 200
    answer = admin_client.post(f"/api/repositories/{repo.pk}/gitlab-unlink")
    assert answer.status_code == 200
    assert answer.json()["gitlab_status"] == "" and answer.json()["gitlab_hook_id"] is None
    assert gitlab_server.project_hooks(project["id"]) == []
    # A hook already deleted in GitLab: unlinking still succeeds.
    assert link(admin_client, repo).status_code == 200
    gitlab_server.hooks[project["id"]].clear()
    assert admin_client.post(f"/api/repositories/{repo.pk}/gitlab-unlink").status_code == 200


def test_the_token_is_encrypted_write_only_and_logged_nowhere(admin_client, repo, token,
                                                              gitlab_server, caplog):
    caplog.set_level(logging.DEBUG)
    linked = link(admin_client, repo)
    body = admin_client.get(f"/api/repositories/{repo.pk}").json()
    assert body["has_gitlab_token"] is True and "gitlab_token" not in body
    admin_page = admin_client.get(f"/admin/repositories/repository/{repo.pk}/change/")
    assert admin_page.status_code == 200 and "gitlab_url" in admin_page.content.decode()
    Repository.objects.filter(pk=repo.pk).update(gitlab_project_id=12345)  # now unknown
    assert gitlab.report_commit_status(Repository.objects.get(pk=repo.pk), SHA, "failed") is False
    for shown in (linked.content.decode(), repr(body), admin_page.content.decode(),
                  admin_client.get("/repositories/").content.decode(), stored_rows(),
                  caplog.text):
        assert token not in shown
    assert Repository.objects.get(pk=repo.pk).gitlab_token == token  # decrypted for use
    assert "not reported to GitLab" in caplog.text


def test_changing_the_gitlab_url_requires_the_token_again(admin_client, repo, gitlab_server,
                                                          token):
    assert link(admin_client, repo).status_code == 200
    moved = admin_client.patch(f"/api/repositories/{repo.pk}",
                               {"gitlab_url": "https://elsewhere.example.test"},
                               content_type="application/json")
    assert moved.status_code == 400
    assert moved.json()["errors"]["gitlab_token"] == [
        "changing the GitLab URL requires the GitLab token again"]
    via_link = link(admin_client, repo, gitlab_url="https://elsewhere.example.test")
    assert via_link.status_code == 400 and "gitlab_token" in via_link.json()["errors"]
    assert Repository.objects.get(pk=repo.pk).gitlab_url == gitlab_server.url
    again = admin_client.patch(f"/api/repositories/{repo.pk}", {
        "gitlab_url": gitlab_server.url + "/", "gitlab_token": token},
        content_type="application/json")
    assert again.status_code == 200
    # The link belonged to the settings before: it must be made again.
    assert again.json()["gitlab_status"] == "" and again.json()["gitlab_hook_id"] is None
    assert "link again" in again.json()["gitlab_message"]


@pytest.mark.parametrize("url", [
    "ssh://git@gitlab.example.test/team/deploy.git", "git@gitlab.example.test:team/deploy.git",
    "file:///etc/passwd", "oci://gitlab.example.test", "https://user:pw@gitlab.example.test",
    "https://gitlab.example.test/?next=x", "gopher://gitlab.example.test",
])
def test_a_gitlab_url_that_is_not_plain_http_or_https_is_refused(admin_client, repo, url):
    answer = admin_client.patch(f"/api/repositories/{repo.pk}", {
        "gitlab_url": url, "gitlab_token": "t"}, content_type="application/json")
    assert answer.status_code == 400 and "gitlab_url" in answer.json()["errors"]
    with pytest.raises(gitlab.GitLabError, match="GitLab URL"):
        gitlab.client(url, "t")  # nor does the client take it


def test_only_platform_admins_link_and_unlink(django_user_model, repo):
    viewer = Client()
    viewer.force_login(django_user_model.objects.create_user("vera", password="pw"))
    assert link(viewer, repo).status_code == 403
    assert viewer.post(f"/api/repositories/{repo.pk}/gitlab-unlink").status_code == 403
    assert "gitlab_token" not in viewer.get(f"/api/repositories/{repo.pk}").json()


def test_the_admin_action_links(admin_client, repo, gitlab_server, project):
    answer = admin_client.post("/admin/repositories/repository/", {
        "action": "link_gitlab", "_selected_action": [repo.pk]}, follow=True)
    assert "linked to GitLab" in answer.content.decode()
    assert len(gitlab_server.project_hooks(project["id"])) == 1


def test_commit_statuses_are_reported_and_a_repeated_one_is_not_an_error(
        admin_client, repo, gitlab_server, project, caplog):
    assert gitlab.report_commit_status(repo, SHA, "pending") is False  # not linked yet
    assert link(admin_client, repo).status_code == 200
    repo.refresh_from_db()
    target = f"{PUBLIC_URL}/builds/7/"
    for state in ("pending", "running", "running", "success"):
        assert gitlab.report_commit_status(repo, SHA, state, target, f"build 7 {state}") is True
    assert [(s["sha"], s["status"]) for s in gitlab_server.statuses] == [
        (SHA, "pending"), (SHA, "running"), (SHA, "success")]
    assert gitlab_server.statuses[-1]["target_url"] == target
    assert gitlab_server.statuses[-1]["name"] == gitlab.STATUS_NAME
    assert "not reported" not in caplog.text  # the repeated one was not logged as a failure
    with pytest.raises(ValueError, match="not one of"):
        gitlab.report_commit_status(repo, SHA, "done")
    with pytest.raises(ValueError, match="not a commit sha"):
        gitlab.report_commit_status(repo, "../../hooks", "success")
