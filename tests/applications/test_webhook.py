"""The git webhook and the request guards around it, on PostgreSQL, Redis, the git server and
a real web server: closed by default, one handling per delivery, only the apps a ref moves, 413 for
big bodies, 503 when the queue is down, secrets kept out of access logs, http(s) URLs only."""
import http.client
import json
import os
import subprocess
import sys
import time
import uuid

import django_rq
import pytest

from apps.applications import queueing, refreshing, services
from apps.applications.models import Application, Operation
from apps.core.queues import QueueUnavailable
from apps.repositories.models import Repository
from gitops_ui.env import BASE_DIR
from tests.gitcli import git
from tests.localstack.process import free_port, port_open
from tests.waiting import until

from .factories import REPO_URL, WEBHOOK_SECRET, make_app, make_history

ZEROS = "0" * 40


def gitlab_push(ref="refs/heads/main", url=REPO_URL, after="c" * 40, event="Push Hook"):
    return {"object_kind": "push" if event == "Push Hook" else "tag_push", "ref": ref,
            "before": "b" * 40, "after": after,
            "project": {"git_http_url": url, "default_branch": "main"}}


def post_hook(client, body, token=WEBHOOK_SECRET, event="Push Hook", query="", **headers):
    if event:
        headers["HTTP_X_GITLAB_EVENT"] = event
    if token:
        headers["HTTP_X_GITLAB_TOKEN"] = token
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(f"/api/webhook/git{query}", data, content_type="application/json", **headers)


def refresh_jobs(queue) -> list[tuple]:
    return [job.args for job in queue.get_jobs()
            if job.func_name == "apps.applications.jobs.refresh_repository"]


@pytest.fixture
def redis_down(settings):
    """Every RQ queue pointed at a port nothing listens on: Redis is unreachable."""
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings.RQ_QUEUES = {name: {**config, "URL": dead}
                          for name, config in settings.RQ_QUEUES.items()}


# --- closed by default -------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_webhook_is_refused_until_a_secret_is_configured(client, world, sync_queue, settings):
    settings.GITOPS_UI_WEBHOOK_SECRET = ""
    Repository.objects.filter(pk=world.repo.pk).update(webhook_secret="")
    for body in (gitlab_push(), gitlab_push(url="https://gitlab.example.com/team/nobody.git")):
        refused = post_hook(client, body, token=None)
        assert refused.status_code == 403
        assert "secret is configured" in refused.json()["detail"]
    assert sync_queue.count == 0

    settings.GITOPS_UI_WEBHOOK_OPEN = True  # the explicit open mode
    accepted = post_hook(client, gitlab_push(), token=None)
    assert accepted.status_code == 202 and accepted.json()["applications"] == ["shop"]
    assert sync_queue.count == 1
    # Open mode does not switch a configured secret off.
    Repository.objects.filter(pk=world.repo.pk).update(webhook_secret=WEBHOOK_SECRET)
    assert post_hook(client, gitlab_push(), token="guess").status_code == 403


def test_webhook_settings_are_shown_to_platform_admins_only(client, admin_client, world, settings,
                                                           django_user_model):
    settings.GITOPS_UI_WEBHOOK_SECRET = "global-hook-secret"
    response = admin_client.get("/api/webhook/settings")
    assert response.status_code == 200
    assert response.json() == {"url": "http://testserver/api/webhook/git",
                               "secret": "global-hook-secret", "secret_header": "X-Gitlab-Token",
                               "open": False}
    assert response["Cache-Control"] == "no-store"
    assert client.get("/api/webhook/settings").status_code in (401, 403)
    staff = django_user_model.objects.create_user("ops", password="pw-ops-1234", is_staff=True)
    client.force_login(staff)
    refused = client.get("/api/webhook/settings")
    assert refused.status_code == 403 and b"global-hook-secret" not in refused.content


# --- one handling per delivery -----------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("header", ["HTTP_X_GITLAB_EVENT_UUID", "HTTP_IDEMPOTENCY_KEY"])
def test_a_repeated_delivery_is_handled_once(client, world, sync_queue, header):
    delivery = {header: str(uuid.uuid4())}
    first = post_hook(client, gitlab_push(), **delivery)
    assert first.status_code == 202 and first.json()["applications"] == ["shop"]
    assert sync_queue.count == 1
    sync_queue.empty()  # the refresh ran: nothing would merge a second one into it
    for key in django_rq.get_connection("sync").scan_iter("gitops-ui:*-queued:*"):
        django_rq.get_connection("sync").delete(key)

    again = post_hook(client, gitlab_push(), **delivery)
    assert again.status_code == 200
    assert again.json() == {"applications": [], "duplicate": True}
    assert sync_queue.count == 0
    other = post_hook(client, gitlab_push(), **{header: str(uuid.uuid4())})
    assert other.status_code == 202 and sync_queue.count == 1
    # A delivery refused for its token is not remembered: sent again with the token, it counts.
    retried = {header: str(uuid.uuid4())}
    assert post_hook(client, gitlab_push(), token="guess", **retried).status_code == 403
    assert post_hook(client, gitlab_push(), **retried).status_code == 202


# --- only the apps a ref moves -----------------------------------------------------------------
@pytest.fixture
def tracked(world, git_server, tmp_path):
    """A real repository (main, dev, tag v1.0) and one app per way of naming a revision."""
    name = f"hooks-{uuid.uuid4().hex[:8]}"
    url = git_server.create_repo(name)
    work = tmp_path / "work"
    git("init", "--quiet", "--initial-branch=main", work)
    (work / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n")
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "first", cwd=work)
    sha = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    git("tag", "v1.0", cwd=work)
    remote = git_server.auth_url(name)
    git("push", "--quiet", remote, "main", "main:dev", "v1.0", cwd=work)
    repo = Repository.objects.create(url=url, username=git_server.username,
                                     password=git_server.password, webhook_secret=WEBHOOK_SECRET)
    revisions = {"on-head": "HEAD", "on-empty": "", "on-main": "main",
                 "on-main-full": "refs/heads/main", "on-dev": "dev", "on-tag": "v1.0",
                 "on-tag-full": "refs/tags/v1.0", "on-sha": sha}
    for app_name, revision in revisions.items():
        make_app(app_name, world.project, repo, world.cluster, revision=revision)
    pinned = make_app("pinned", world.project, repo, world.cluster, revision="main",
                      pinned_revision=sha)
    make_history(pinned, sha)
    return repo


def refreshed_apps(repo) -> list[str]:
    return sorted(Application.objects.filter(repository=repo, reconciled_at__isnull=False)
                  .values_list("name", flat=True))


def run_refresh_jobs(queue):
    for args in refresh_jobs(queue):
        refreshing.refresh_repository(*args)  # what the worker runs, in this process


@pytest.mark.django_db(transaction=True)
def test_a_tag_push_refreshes_only_the_apps_tracking_the_tag(client, tracked, sync_queue):
    tag = post_hook(client, gitlab_push("refs/tags/v1.0", tracked.url), event="Tag Push Hook")
    assert tag.status_code == 202
    assert sorted(tag.json()["applications"]) == ["on-tag", "on-tag-full"]
    # A branch push at the same moment is queued too, not merged into the tag's refresh.
    branch = post_hook(client, gitlab_push("refs/heads/main", tracked.url))
    assert sorted(branch.json()["applications"]) == ["on-empty", "on-head", "on-main",
                                                     "on-main-full"]
    assert sorted(refresh_jobs(sync_queue)) == [(tracked.pk, "refs/heads/main", "main"),
                                                (tracked.pk, "refs/tags/v1.0", "main")]
    sync_queue.empty()
    refreshing.refresh_repository(tracked.pk, "refs/tags/v1.0", "main")
    assert refreshed_apps(tracked) == ["on-tag", "on-tag-full"]


@pytest.mark.django_db(transaction=True)
def test_a_branch_deletion_refreshes_only_the_apps_of_that_branch(client, tracked, sync_queue):
    deleted = post_hook(client, gitlab_push("refs/heads/dev", tracked.url, after=ZEROS))
    assert deleted.status_code == 202 and deleted.json()["applications"] == ["on-dev"]
    run_refresh_jobs(sync_queue)
    assert refreshed_apps(tracked) == ["on-dev"]  # pinned and sha-tracking apps never move


@pytest.mark.django_db(transaction=True)
def test_a_push_without_a_ref_refreshes_every_app_but_the_fixed_ones(client, tracked, sync_queue):
    generic = post_hook(client, {"repository": tracked.url}, event=None)
    assert generic.status_code == 202 and len(generic.json()["applications"]) == 9
    assert refresh_jobs(sync_queue) == [(tracked.pk,)]
    run_refresh_jobs(sync_queue)
    assert len(refreshed_apps(tracked)) == 9
    short = post_hook(client, {"repository": tracked.url, "ref": "main"}, event=None)
    assert short.status_code == 400 and "refs/heads/<branch>" in short.json()["detail"]


# --- big bodies --------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_an_oversized_body_answers_413_in_json_without_a_traceback(client, admin_client, world,
                                                                  sync_queue, settings, caplog):
    settings.GITOPS_UI_MAX_BODY_BYTES = 2000
    big = gitlab_push() | {"padding": "x" * 3000}
    for response in (post_hook(client, big),
                     admin_client.post("/api/applications/", big, content_type="application/json")):
        assert response.status_code == 413
        assert response.json() == {"detail": "request body too large (limit 2000 bytes)"}
    assert sync_queue.count == 0 and Application.objects.count() == 1

    # A form body Django finds too big while parsing it (whatever its announced length).
    settings.GITOPS_UI_MAX_BODY_BYTES = 100_000
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    form = client.post(f"/api/webhook/git?token={WEBHOOK_SECRET}", {"url": "x" * 5000})
    assert form.status_code == 413
    assert form.json() == {"detail": "request body too large (limit 1000 bytes)"}
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert post_hook(client, gitlab_push()).status_code == 202  # small bodies still pass


# --- Redis down --------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_sync_and_webhook_answer_503_with_no_operation_when_redis_is_down(
        client, admin_client, world, redis_down):
    started = time.monotonic()
    sync = admin_client.post("/api/applications/shop/sync", {}, content_type="application/json")
    assert sync.status_code == 503, sync.content
    assert "Redis" in sync.json()["detail"] and sync["Retry-After"]
    entry = make_history(world.app)
    rollback = admin_client.post("/api/applications/shop/rollback", {"history_id": entry.pk},
                                 content_type="application/json")
    assert rollback.status_code == 503
    assert Application.objects.get(pk=world.app.pk).pinned_revision == ""  # not pinned either
    hook = post_hook(client, gitlab_push(), HTTP_X_GITLAB_EVENT_UUID=str(uuid.uuid4()))
    assert hook.status_code == 503 and "Redis" in hook.json()["detail"]
    refresh = admin_client.post("/api/applications/shop/refresh")
    assert refresh.status_code == 503
    assert not Operation.objects.exists()
    # A new application is saved all the same: the reconciler's schedule refreshes it.
    created = admin_client.post("/api/applications/", {
        "name": "cart", "project": "default", "repository": REPO_URL, "cluster": "prod",
        "namespace": "cart"}, content_type="application/json")
    assert created.status_code == 201, created.content
    assert time.monotonic() - started < 30  # refused, not hung


@pytest.mark.django_db(transaction=True)
def test_an_operation_whose_job_cannot_be_queued_is_not_left_pending(world, settings):
    op = services.request_sync(world.app, enqueue=False)  # Redis was up when it was created
    settings.RQ_QUEUES = {name: {**config, "URL": f"redis://127.0.0.1:{free_port()}/0"}
                          for name, config in settings.RQ_QUEUES.items()}
    with pytest.raises(QueueUnavailable):
        queueing.enqueue_operation(op)
    assert not Operation.objects.filter(pk=op.pk).exists()
    assert services.request_sync(world.app, enqueue=False).phase == "Pending"  # free to sync


# --- repository URLs ---------------------------------------------------------------------------
# SSH URLs are taken, with a key and known_hosts: tests/repositories/test_ssh.py.
BAD_URLS = ["file:///srv/git/deploy.git", "ext::sh -c touch% /tmp/pwned", "/srv/git/deploy.git"]


@pytest.mark.parametrize("url", BAD_URLS)
def test_the_admin_and_the_api_refuse_a_repository_url_that_is_not_http(admin_client, db, url):
    page = admin_client.post("/admin/repositories/repository/add/", {
        "url": url, "username": "", "password": "", "webhook_secret": ""})
    assert page.status_code == 200  # the form again, with the error
    assert b"an http(s) clone URL" in page.content
    api = admin_client.post("/api/repositories/", {"url": url}, content_type="application/json")
    assert api.status_code == 400 and "http(s) clone URL" in api.json()["detail"]
    assert not Repository.objects.exists()


# --- access logs -------------------------------------------------------------------------------
def test_a_query_token_never_reaches_the_access_log(tmp_path):
    """The web process as `make run` starts it: uvicorn writes every request line to stdout."""
    port = free_port()
    env = {**os.environ, "GITOPS_UI_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE":
           "gitops_ui.settings", "PYTHONUNBUFFERED": "1"}
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        web = subprocess.Popen([sys.executable, "-m", "apps.core.webserver", "-b", "127.0.0.1",
                                "-p", str(port), "gitops_ui.asgi:application"], cwd=BASE_DIR,
                               env=env, stdout=stdout, stderr=stderr)
        try:
            assert until(lambda: port_open(port), bool, timeout=60), err.read_text()[-2000:]
            secret = "qs-secret-5d1e"
            # Sent byte for byte (%74oken is "token" to Django too). Malformed JSON: answered
            # (400) and logged by Django before any database work.
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("POST", f"/api/webhook/git?token={secret}&%74oken={secret}",
                               body='{"project": ', headers={"Content-Type": "application/json",
                                                            "X-Gitlab-Event": "Push Hook"})
            assert connection.getresponse().status == 400
            connection.close()
            until(lambda: out.read_text(), lambda text: "/api/webhook/git" in text, timeout=10)
        finally:
            web.terminate()
            web.wait(timeout=30)
    logs = out.read_text() + err.read_text()
    assert "POST /api/webhook/git?token=***&%74oken=***" in out.read_text()
    assert "Bad Request: /api/webhook/git" in err.read_text()  # django.request: path only
    assert secret not in logs
