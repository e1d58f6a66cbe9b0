"""The app_* management commands: tables for people, --json for machines, exit codes."""
import json
import os
import subprocess
import uuid
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.applications.models import Application, Operation, Project
from apps.clusters.models import Cluster
from apps.repositories.models import Repository

from .factories import SECRETS, make_app, make_history

pytestmark = pytest.mark.django_db


def run(*args) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    for secret in SECRETS:
        assert secret not in out.getvalue() + err.getvalue()
    return code, out.getvalue(), err.getvalue()


def test_app_list_table_json_and_filters(world):
    other = Project.objects.create(name="other")
    make_app("cart", other, world.repo, world.cluster, sync_status="OutOfSync",
             target_sha="e" * 40)
    code, out, _ = run("app_list")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["NAME", "PROJECT", "SYNC", "HEALTH", "REVISION", "TARGET",
                              "CLUSTER", "NAMESPACE"]
    assert rows[0].split() == ["cart", "other", "OutOfSync", "Unknown", "HEAD", "e" * 12,
                               "prod", "cart"]
    listed = json.loads(run("app_list", "--json")[1])
    assert [a["name"] for a in listed] == ["cart", "shop"]
    assert listed[1]["sync_status"] == "Synced" and listed[1]["repository"] == world.repo.url
    assert [a["name"] for a in json.loads(run("app_list", "--json", "--project", "other")[1])] == ["cart"]
    assert [a["name"] for a in json.loads(run("app_list", "--json", "--sync", "Synced")[1])] == ["shop"]


def test_app_get_json_and_text(world):
    resources = [{"group": "apps", "kind": "Deployment", "namespace": "shop", "name": "web",
                  "status": "Synced", "health": "Healthy", "differences": []}]
    Application.objects.filter(pk=world.app.pk).update(
        resources=resources, conditions=[{"type": "SyncError", "message": "boom"}])
    body = json.loads(run("app_get", "shop", "--json")[1])
    assert (body["name"], body["cluster"], body["resources"]) == ("shop", "prod", resources)
    _, text, _ = run("app_get", "shop")
    assert "Destination: prod/shop" in text and "SyncError: boom" in text
    assert "Deployment  shop       web   Synced  Healthy" in text
    with pytest.raises(CommandError, match="no application named 'nope'"):
        run("app_get", "nope")


def test_app_history_and_rollback(world, sync_queue):
    old, new = make_history(world.app, "1" * 40), make_history(world.app, "2" * 40)
    history = json.loads(run("app_history", "shop", "--json")[1])
    assert [h["id"] for h in history] == [new.pk, old.pk]
    assert "1" * 12 in run("app_history", "shop")[1]
    other = make_app("other", world.project, world.repo, world.cluster)
    foreign = make_history(other)
    with pytest.raises(CommandError, match="belongs to another application"):
        run("app_rollback", "shop", "--history-id", str(foreign.pk))
    with pytest.raises(CommandError, match="no history entry"):
        run("app_rollback", "shop", "--history-id", "999999")
    op = json.loads(run("app_rollback", "shop", "--history-id", str(old.pk), "--json")[1])
    assert (op["kind"], op["revision"], op["phase"]) == ("rollback", "1" * 40, "Pending")
    assert Application.objects.get(pk=world.app.pk).pinned_revision == "1" * 40


def test_app_sync_queues_and_refuses_a_second(world, sync_queue):
    code, out, _ = run("app_sync", "shop", "--revision", "v2", "--no-prune",
                       "--resource", "apps/Deployment:shop/web", "--json")
    op = json.loads(out)
    assert code == 0
    assert (op["phase"], op["revision"], op["options"]) == (
        "Pending", "v2", {"prune": False, "dry_run": False, "resources": ["apps/Deployment:shop/web"]})
    assert Operation.objects.get().job_id == f"operation-{op['id']}"
    with pytest.raises(CommandError, match="already has an operation running"):
        run("app_sync", "shop")


def test_app_diff_exits_2_when_it_cannot_compare(world, git_server):
    Repository.objects.filter(pk=world.repo.pk).update(url=git_server.url("no-such-repo"))
    code, _, err = run("app_diff", "shop")
    assert code == 2
    assert "ComparisonError" in err


# --- on the real control plane -----------------------------------------------------------------
def push_configmap(git_server, name: str, tmp_path, data: str) -> None:
    work = tmp_path / name
    env = {**os.environ, "GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
           "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "dev@example.com"}

    def git(*args):
        subprocess.run(["git", *args], cwd=work, env=env, check=True, capture_output=True)

    work.mkdir()
    git("init", "-q", "--initial-branch=main")
    (work / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n"
                                  f"data:\n  colour: {data}\n")
    git("add", "-A")
    git("commit", "-q", "-m", "settings")
    git("push", "-q", git_server.auth_url(name), "HEAD:main")


@pytest.mark.django_db(transaction=True)  # the sync runs threads with their own connections
@pytest.mark.timeout(600)
def test_diff_sync_wait_and_history_on_a_real_cluster(git_server, kube, tmp_path):
    name = f"cmd-{uuid.uuid4().hex[:8]}"
    url = git_server.create_repo(name)
    push_configmap(git_server, name, tmp_path, "blue")
    cluster = Cluster.objects.create(name=name, auth=Cluster.Auth.KUBECONFIG,
                                     kubeconfig=kube.kubeconfig_text())
    repo = Repository.objects.create(url=url, username=git_server.username,
                                     password=git_server.password)
    project = Project.objects.create(name=name)
    make_app(name, project, repo, cluster, sync_options=["CreateNamespace=true"])

    code, out, _ = run("app_diff", name)
    assert code == 1, out
    assert f"OutOfSync  /ConfigMap:{name}/settings" in out and "(missing)" in out

    code, out, _ = run("app_sync", name, "--wait", "--json")
    op = json.loads(out)
    assert code == 0 and op["phase"] == "Succeeded", op

    code, out, _ = run("app_diff", name, "--json")
    assert code == 0, out
    assert json.loads(out)["sync"] == "Synced"
    history = json.loads(run("app_history", name, "--json")[1])
    assert [h["sha"] for h in history] == [op["sha"]]
