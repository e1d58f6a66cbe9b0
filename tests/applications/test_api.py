"""The REST API, the git webhook and the admin pages, on PostgreSQL and Redis."""
import json
import uuid

import pytest
from django.db import connection
from knox.models import AuthToken

from apps.applications.models import Application, Operation, Project
from apps.clusters.models import Cluster
from apps.repositories.models import Repository

from .factories import (CLUSTER_TOKEN, KUBECONFIG, REPO_PASSWORD, REPO_URL, SECRETS,
                        WEBHOOK_SECRET, make_app, make_history)

pytestmark = pytest.mark.django_db


def assert_no_secret(response):
    for secret in SECRETS:
        assert secret.encode() not in response.content, f"{secret} leaked"


def stored(table: str, column: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


# --- access ------------------------------------------------------------------------------------
@pytest.mark.parametrize("method,url", [
    ("get", "/api/clusters/"), ("get", "/api/repositories/"), ("get", "/api/projects/"),
    ("get", "/api/applications/"), ("get", "/api/applications/shop"),
    ("post", "/api/applications/shop/sync"), ("get", "/api/operations/"),
    ("post", "/api/clusters/1/check"),
])
def test_anonymous_users_are_refused(client, world, method, url):
    response = getattr(client, method)(url)
    assert response.status_code in (401, 403)
    assert "detail" in response.json()


def test_token_authentication(client, admin_user, world):
    _, token = AuthToken.objects.create(user=admin_user)
    response = client.get("/api/applications/", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200
    assert [a["name"] for a in response.json()["results"]] == ["shop"]


def test_api_root_lists_every_collection(admin_client):
    body = admin_client.get("/api/").json()
    assert set(body) >= {"clusters", "repositories", "projects", "applications", "operations",
                         "webhook", "heartbeat"}
    assert body["applications"].endswith("/api/applications/")


# --- secrets -----------------------------------------------------------------------------------
def test_cluster_secrets_are_write_only_and_encrypted(admin_client):
    created = admin_client.post("/api/clusters/", {
        "name": "staging", "auth": "token", "server": "https://10.0.0.1:6443",
        "token": CLUSTER_TOKEN, "kubeconfig": KUBECONFIG}, content_type="application/json")
    assert created.status_code == 201, created.content
    assert_no_secret(created)
    body = created.json()
    assert "token" not in body and "kubeconfig" not in body
    assert body["has_token"] and body["has_kubeconfig"]
    pk = body["id"]
    for response in (admin_client.get("/api/clusters/"), admin_client.get(f"/api/clusters/{pk}"),
                     admin_client.get(f"/api/clusters/{pk}", HTTP_ACCEPT="text/html")):
        assert response.status_code == 200
        assert_no_secret(response)
    updated = admin_client.patch(f"/api/clusters/{pk}", {"name": "staging-eu"},
                                 content_type="application/json")
    assert updated.status_code == 200
    assert_no_secret(updated)
    assert Cluster.objects.get(pk=pk).token == CLUSTER_TOKEN  # omitted: unchanged
    replaced = admin_client.patch(f"/api/clusters/{pk}", {"token": CLUSTER_TOKEN + "-2"},
                                  content_type="application/json")
    assert replaced.status_code == 200
    assert_no_secret(replaced)
    assert Cluster.objects.get(pk=pk).token == CLUSTER_TOKEN + "-2"
    for column in ("token", "kubeconfig"):
        raw = stored("clusters_cluster", column, pk)
        assert raw.startswith("gAAAA") and "never-shown" not in raw


def test_cluster_with_token_auth_needs_a_token(admin_client):
    response = admin_client.post("/api/clusters/", {"name": "bare", "server": "https://10.0.0.2:6443"},
                                 content_type="application/json")
    assert response.status_code == 400
    assert "needs server and token" in response.json()["detail"]


def test_repository_secrets_are_write_only_and_encrypted(admin_client):
    created = admin_client.post("/api/repositories/", {
        "url": "https://gitlab.example.com/team/other.git", "username": "bot",
        "password": REPO_PASSWORD, "webhook_secret": WEBHOOK_SECRET},
        content_type="application/json")
    assert created.status_code == 201, created.content
    assert_no_secret(created)
    pk = created.json()["id"]
    assert created.json()["has_password"] and created.json()["has_webhook_secret"]
    for response in (admin_client.get("/api/repositories/"),
                     admin_client.get(f"/api/repositories/{pk}"),
                     admin_client.get(f"/api/repositories/{pk}", HTTP_ACCEPT="text/html"),
                     admin_client.put(f"/api/repositories/{pk}", {
                         "url": "https://gitlab.example.com/team/other.git", "username": "bot2"},
                         content_type="application/json")):
        assert response.status_code == 200
        assert_no_secret(response)
    repo = Repository.objects.get(pk=pk)
    assert (repo.username, repo.password, repo.webhook_secret) == ("bot2", REPO_PASSWORD,
                                                                   WEBHOOK_SECRET)
    for column in ("password", "webhook_secret"):
        raw = stored("repositories_repository", column, pk)
        assert raw.startswith("gAAAA") and "never-shown" not in raw


def test_repository_url_must_not_carry_credentials(admin_client):
    response = admin_client.post("/api/repositories/", {
        "url": f"https://bot:{REPO_PASSWORD}@gitlab.example.com/team/x.git"},
        content_type="application/json")
    assert response.status_code == 400
    assert "credentials do not belong in the URL" in response.json()["detail"]
    assert_no_secret(response)


def test_admin_change_pages_never_show_secrets(admin_client, world):
    for url in (f"/admin/clusters/cluster/{world.cluster.pk}/change/",
                f"/admin/repositories/repository/{world.repo.pk}/change/",
                f"/admin/applications/application/{world.app.pk}/change/",
                "/admin/clusters/cluster/", "/admin/repositories/repository/"):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert_no_secret(response)


def test_check_endpoints_report_failures_without_secrets(admin_client, world, git_server):
    cluster = admin_client.post(f"/api/clusters/{world.cluster.pk}/check")
    assert cluster.status_code == 200
    assert cluster.json()["connection_status"] == "Failed"
    assert_no_secret(cluster)

    name = f"api-check-{uuid.uuid4().hex[:8]}"
    repo = Repository.objects.create(url=git_server.create_repo(name),
                                     username=git_server.username, password=REPO_PASSWORD)
    wrong = admin_client.post(f"/api/repositories/{repo.pk}/check")
    assert wrong.status_code == 200
    assert wrong.json()["connection_status"] == "Failed"
    assert wrong.json()["connection_message"]
    assert_no_secret(wrong)

    Repository.objects.filter(pk=repo.pk).update(password=git_server.password)  # encrypted on save
    right = admin_client.post(f"/api/repositories/{repo.pk}/check")
    assert right.json()["connection_status"] == "Successful", right.json()
    assert git_server.password.encode() not in right.content


# --- projects ----------------------------------------------------------------------------------
def test_project_crud_and_protection(admin_client, world):
    created = admin_client.post("/api/projects/", {
        "name": "team-a", "source_repos": ["https://gitlab.example.com/team/*"],
        "destinations": [{"cluster": "prod", "namespace": "team-a-*"}]},
        content_type="application/json")
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    assert created.json()["destinations"] == [{"cluster": "prod", "namespace": "team-a-*"}]
    assert admin_client.patch(f"/api/projects/{pk}", {"description": "A"},
                              content_type="application/json").json()["description"] == "A"
    assert admin_client.delete(f"/api/projects/{pk}").status_code == 204
    in_use = admin_client.delete(f"/api/projects/{world.project.pk}")
    assert in_use.status_code == 409
    assert "shop" in in_use.json()["detail"]


# --- applications: CRUD ------------------------------------------------------------------------
def app_body(**overrides):
    return {"name": "cart", "project": "default", "repository": REPO_URL, "cluster": "prod",
            "namespace": "cart", "path": "deploy", **overrides}


def test_application_create_read_update_delete(admin_client, world, sync_queue):
    created = admin_client.post("/api/applications/", app_body(), content_type="application/json")
    assert created.status_code == 201, created.content
    assert created.json()["sync_status"] == "Unknown"
    assert_no_secret(created)
    detail = admin_client.get("/api/applications/cart")
    assert detail.json()["repository"] == REPO_URL and detail.json()["cluster"] == "prod"
    updated = admin_client.patch("/api/applications/cart", {"revision": "v2", "automated": True},
                                 content_type="application/json")
    assert updated.status_code == 200
    assert Application.objects.get(name="cart").revision == "v2"
    renamed = admin_client.patch("/api/applications/cart", {"name": "basket"},
                                 content_type="application/json")
    assert renamed.status_code == 400
    assert "cannot be renamed" in renamed.json()["detail"]
    assert admin_client.delete("/api/applications/cart").status_code == 204
    assert admin_client.get("/api/applications/cart").status_code == 404


def test_application_input_errors_are_400_with_detail(admin_client, world):
    response = admin_client.post("/api/applications/", app_body(name="Not_A_Label", cluster="nope"),
                                 content_type="application/json")
    assert response.status_code == 400
    body = response.json()
    assert set(body["errors"]) == {"name", "cluster"}
    assert "cluster" in body["detail"]


@pytest.mark.parametrize("project_rules,message", [
    ({"source_repos": ["https://github.com/*"]}, "does not allow repository"),
    ({"destinations": [{"cluster": "prod", "namespace": "team-*"}]}, "does not allow destination"),
])
def test_project_rules_are_enforced_on_create_and_update(admin_client, world, project_rules, message):
    Project.objects.create(name="strict", **project_rules)
    refused = admin_client.post("/api/applications/", app_body(project="strict"),
                                content_type="application/json")
    assert refused.status_code == 403
    assert message in refused.json()["detail"]
    assert not Application.objects.filter(name="cart").exists()
    moved = admin_client.patch("/api/applications/shop", {"project": "strict"},
                               content_type="application/json")
    assert moved.status_code == 403
    assert Application.objects.get(name="shop").project.name == "default"


def test_list_is_paginated_and_filtered(admin_client, world):
    other = Project.objects.create(name="other")
    for i in range(54):
        make_app(f"app-{i:02d}", other if i % 2 else world.project, world.repo, world.cluster,
                 sync_status="OutOfSync" if i % 3 == 0 else "Synced",
                 health_status="Degraded" if i == 7 else "Healthy")
    first = admin_client.get("/api/applications/").json()
    assert first["count"] == 55 and len(first["results"]) == 50 and first["next"]
    second = admin_client.get("/api/applications/?page=2").json()
    assert len(second["results"]) == 5 and second["next"] is None

    def names(query):
        response = admin_client.get(f"/api/applications/?{query}")
        assert response.status_code == 200
        return [a["name"] for a in response.json()["results"]]

    assert names("health=Degraded") == ["app-07"]
    assert len(names("sync=OutOfSync")) == 18
    assert len(names("project=other")) == 27
    assert names("search=app-1") == [f"app-{i}" for i in range(10, 20)]
    assert names("search=sho") == ["shop"]
    assert names("sync=outofsync&health=degraded") == []
    assert names("project=other&sync=OutOfSync&search=app-0") == ["app-03", "app-09"]


# --- applications: actions ---------------------------------------------------------------------
def test_sync_returns_the_operation_and_a_second_one_conflicts(admin_client, admin_user, world):
    response = admin_client.post("/api/applications/shop/sync", {
        "revision": "main", "prune": True, "dry_run": True,
        "resources": ["apps/Deployment:shop/web", "/Service:shop/web"]},
        content_type="application/json")
    assert response.status_code == 202, response.content
    op = response.json()
    assert (op["phase"], op["kind"], op["revision"], op["initiator"]) == (
        "Pending", "sync", "main", admin_user.username)
    assert op["options"] == {"prune": True, "dry_run": True,
                             "resources": ["apps/Deployment:shop/web", "/Service:shop/web"]}
    second = admin_client.post("/api/applications/shop/sync", {}, content_type="application/json")
    assert second.status_code == 409
    assert "already has an operation running" in second.json()["detail"]
    listed = admin_client.get("/api/applications/shop/operations").json()
    assert [o["id"] for o in listed["results"]] == [op["id"]]
    assert admin_client.get(f"/api/operations/{op['id']}").json()["phase"] == "Pending"
    deleting = admin_client.delete("/api/applications/shop")
    assert deleting.status_code == 409


def test_sync_rejects_malformed_resource_keys(admin_client, world):
    response = admin_client.post("/api/applications/shop/sync", {"resources": ["Deployment/web"]},
                                 content_type="application/json")
    assert response.status_code == 400
    assert "group/kind:namespace/name" in response.json()["detail"]
    assert not Operation.objects.exists()


def test_sync_of_an_app_its_project_no_longer_allows_is_forbidden(admin_client, world):
    Project.objects.filter(pk=world.project.pk).update(source_repos=["https://elsewhere/*"])
    response = admin_client.post("/api/applications/shop/sync", {}, content_type="application/json")
    assert response.status_code == 403


def test_terminate_a_pending_operation_then_again(admin_client, world):
    op_id = admin_client.post("/api/applications/shop/sync", {},
                              content_type="application/json").json()["id"]
    stopped = admin_client.post(f"/api/operations/{op_id}/terminate")
    assert stopped.status_code == 202
    assert stopped.json()["phase"] == "Terminated"
    again = admin_client.post(f"/api/operations/{op_id}/terminate")
    assert again.status_code == 409
    assert "already Terminated" in again.json()["detail"]
    assert admin_client.post("/api/operations/999999/terminate").status_code == 404


def test_refresh_is_accepted(admin_client, world, sync_queue):
    response = admin_client.post("/api/applications/shop/refresh")
    assert response.status_code == 202
    assert response.json() == {"application": "shop", "refresh": "queued"}
    assert admin_client.post("/api/applications/nope/refresh").status_code == 404


def test_rollback_pins_the_commit_and_unpin_releases_it(admin_client, world, sync_queue):
    Application.objects.filter(pk=world.app.pk).update(automated=True)
    entry = make_history(world.app, "b" * 40)
    response = admin_client.post("/api/applications/shop/rollback",
                                 {"history_id": entry.pk, "mode": "pin"},
                                 content_type="application/json")
    assert response.status_code == 202, response.content
    assert (response.json()["kind"], response.json()["revision"]) == ("rollback", "b" * 40)
    app = Application.objects.get(pk=world.app.pk)
    assert (app.pinned_revision, app.automated) == ("b" * 40, False)
    history = admin_client.get("/api/applications/shop/history").json()
    assert [h["sha"] for h in history] == ["b" * 40]
    unpinned = admin_client.post("/api/applications/shop/unpin")
    assert unpinned.status_code == 200 and unpinned.json()["pinned_revision"] == ""


def test_rollback_to_another_applications_history_is_refused(admin_client, world):
    other = make_app("other", world.project, world.repo, world.cluster)
    entry = make_history(other)
    response = admin_client.post("/api/applications/shop/rollback", {"history_id": entry.pk},
                                 content_type="application/json")
    assert response.status_code == 400
    assert "belongs to another application" in response.json()["detail"]
    missing = admin_client.post("/api/applications/shop/rollback", {"history_id": 999999},
                                content_type="application/json")
    assert missing.status_code == 400 and "history_id" in missing.json()["errors"]
    bad_mode = admin_client.post("/api/applications/shop/rollback",
                                 {"history_id": entry.pk, "mode": "sideways"},
                                 content_type="application/json")
    assert bad_mode.status_code == 400
    assert not Operation.objects.exists()


def test_rollback_while_an_operation_runs_changes_nothing(admin_client, world):
    entry = make_history(world.app)
    Application.objects.filter(pk=world.app.pk).update(automated=True)
    assert admin_client.post("/api/applications/shop/sync", {},
                             content_type="application/json").status_code == 202
    response = admin_client.post("/api/applications/shop/rollback", {"history_id": entry.pk},
                                 content_type="application/json")
    assert response.status_code == 409
    app = Application.objects.get(pk=world.app.pk)
    assert (app.pinned_revision, app.automated) == ("", True)


def test_resources_include_differences(admin_client, world):
    rows = [{"group": "apps", "kind": "Deployment", "namespace": "shop", "name": "web",
             "status": "OutOfSync", "health": "Healthy", "health_message": "",
             "requires_pruning": False, "differences": ["/spec/replicas"], "error": ""}]
    Application.objects.filter(pk=world.app.pk).update(resources=rows)
    assert admin_client.get("/api/applications/shop/resources").json() == rows


# --- webhook -----------------------------------------------------------------------------------
def gitlab_push(url=REPO_URL, event="Push Hook", ref="refs/heads/main"):
    return {"object_kind": "push" if event == "Push Hook" else "tag_push",
            "ref": ref, "checkout_sha": "c" * 40,
            "project": {"name": "deploy", "git_http_url": url, "default_branch": "main",
                        "git_ssh_url": "git@gitlab.example.com:team/deploy.git"},
            "repository": {"name": "deploy", "git_http_url": url}}


def post_hook(client, body, event="Push Hook", token=WEBHOOK_SECRET, query="", **headers):
    if event:
        headers["HTTP_X_GITLAB_EVENT"] = event
    if token:
        headers["HTTP_X_GITLAB_TOKEN"] = token
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post(f"/api/webhook/git{query}", data, content_type="application/json", **headers)


@pytest.mark.django_db(transaction=True)  # jobs are enqueued on commit
def test_gitlab_push_queues_one_refresh_of_the_repository(client, world, sync_queue):
    make_app("shop-2", world.project, world.repo, world.cluster)
    response = post_hook(client, gitlab_push(REPO_URL.removesuffix(".git")))  # another spelling
    assert response.status_code == 202, response.content
    assert sorted(response.json()["applications"]) == ["shop", "shop-2"]
    [job] = sync_queue.get_jobs()  # one job refreshes the repository's apps on that branch
    assert (job.func_name, job.args) == ("apps.applications.jobs.refresh_repository",
                                         (world.repo.pk, "refs/heads/main", "main"))
    again = post_hook(client, gitlab_push())  # merged with the queued one
    assert again.status_code == 202 and sync_queue.count == 1


@pytest.mark.django_db(transaction=True)
def test_webhook_refusals(client, world, sync_queue):
    wrong = post_hook(client, gitlab_push(), token="guess")
    assert wrong.status_code == 403
    assert "token does not match" in wrong.json()["detail"]
    assert post_hook(client, gitlab_push(), token=None).status_code == 403
    malformed = post_hook(client, '{"project": ')
    assert malformed.status_code == 400
    assert "JSON parse error" in malformed.json()["detail"]
    not_push = post_hook(client, {"object_kind": "push"})
    assert not_push.status_code == 400
    assert "git_http_url" in not_push.json()["detail"]
    generic_without_url = post_hook(client, {"ref": "main"}, event=None)
    assert generic_without_url.status_code == 400
    assert "no repository URL" in generic_without_url.json()["detail"]
    assert post_hook(client, "[1, 2]", event=None).status_code == 400
    assert sync_queue.count == 0


@pytest.mark.django_db(transaction=True)
def test_webhook_other_events_and_unknown_repositories(client, world, sync_queue, settings):
    settings.GITOPS_UI_WEBHOOK_SECRET = "global-hook-secret"
    merge = post_hook(client, {"object_kind": "merge_request"}, event="Merge Request Hook")
    assert merge.status_code == 202
    assert merge.json()["applications"] == []
    assert "Merge Request Hook" in merge.json()["detail"]
    # An unknown repository is answered only to a caller holding the global secret.
    unknown = post_hook(client, gitlab_push("https://gitlab.example.com/team/nobody.git"),
                        token="global-hook-secret")
    assert unknown.status_code == 202 and unknown.json() == {"applications": []}
    assert sync_queue.count == 0


@pytest.mark.django_db(transaction=True)
def test_generic_webhook_forms(client, world, sync_queue):
    as_string = post_hook(client, {"repository": REPO_URL}, event=None)
    assert as_string.status_code == 202 and as_string.json()["applications"] == ["shop"]
    as_object = post_hook(client, {"repository": {"url": "https://GitLab.example.com/team/deploy/"}},
                          event=None, token=None, query=f"?token={WEBHOOK_SECRET}")
    assert as_object.json()["applications"] == ["shop"]
    as_form = client.post(f"/api/webhook/git?token={WEBHOOK_SECRET}", {"url": REPO_URL})
    assert as_form.status_code == 202 and as_form.json()["applications"] == ["shop"]
    assert sync_queue.count == 1  # three pushes while one refresh is queued: merged


# --- admin -------------------------------------------------------------------------------------
def test_admin_application_list_and_actions(admin_client, world, sync_queue):
    Application.objects.filter(pk=world.app.pk).update(target_sha="d" * 40)
    page = admin_client.get("/admin/applications/application/")
    assert page.status_code == 200 and b"d" * 12 in page.content and b"d" * 13 not in page.content
    response = admin_client.post("/admin/applications/application/", {
        "action": "sync_now", "_selected_action": [world.app.pk]}, follow=True)
    assert response.status_code == 200
    assert Operation.objects.get().application == world.app
    admin_client.post("/admin/applications/application/", {
        "action": "sync_now", "_selected_action": [world.app.pk]}, follow=True)
    assert Operation.objects.count() == 1  # the second was refused, not doubled
    assert admin_client.post("/admin/applications/application/", {
        "action": "refresh", "_selected_action": [world.app.pk]}, follow=True).status_code == 200
    for url in ("/admin/applications/operation/", "/admin/applications/historyentry/",
                "/admin/applications/project/", f"/admin/applications/operation/{Operation.objects.get().pk}/change/"):
        assert admin_client.get(url).status_code == 200, url


def test_admin_refuses_an_application_its_project_does_not_allow(admin_client, world):
    Project.objects.create(name="strict", source_repos=["https://github.com/*"])
    strict = Project.objects.get(name="strict")
    response = admin_client.post("/admin/applications/application/add/", {
        "name": "cart", "project": strict.pk, "repository": world.repo.pk, "revision": "HEAD",
        "path": ".", "tool": "", "source": "{}", "cluster": world.cluster.pk, "namespace": "cart",
        "sync_options": "[]", "ignore_differences": "[]", "retry_limit": 2})
    assert response.status_code == 200  # the form again, with the error
    assert b"does not allow repository" in response.content
    assert not Application.objects.filter(name="cart").exists()


@pytest.mark.django_db(transaction=True)
def test_global_webhook_secret_guards_unknown_repositories(client, world, sync_queue, settings):
    settings.GITOPS_UI_WEBHOOK_SECRET = "global-hook-secret"
    unknown = gitlab_push("https://gitlab.example.com/team/nobody.git")
    assert post_hook(client, unknown, token="guess").status_code == 403
    assert post_hook(client, unknown, token="global-hook-secret").json() == {"applications": []}
    # a repository's own secret takes precedence over the global one
    assert post_hook(client, gitlab_push(), token="global-hook-secret").status_code == 403
