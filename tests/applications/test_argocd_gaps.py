"""Deploy repositories written for Argo CD, driven as a user does (Git push, REST API, refresh,
sync) on the real git server, control plane, PostgreSQL and Redis: what trying the product from
outside found (issue 11, part 6)."""
import logging

import pytest

from apps.applications.models import Application, Operation, Project
from apps.repositories.models import Repository
from tests.engine.manifests import configmap, job

# The deploy repository, cluster and app fixtures and helpers of the lifecycle tests.
from tests.appstack import live, refreshed, sync_and_wait

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]


def hook_names(op: Operation) -> list[str]:
    return [r["name"] for r in op.resources if r["action"] == "hook"]


# --- generateName hooks ------------------------------------------------------------------------
MIGRATION_HOOK = """apiVersion: batch/v1
kind: Job
metadata:
  generateName: migrate-
  annotations:
    argocd.argoproj.io/hook: PreSync
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers: [{name: main, image: busybox}]
"""


def test_generate_name_hook_from_git_runs_as_a_new_job_each_sync(repo, make_app):
    repo.push({"app/hook.yaml": MIGRATION_HOOK, "app/settings.yaml": configmap("settings")})
    app = refreshed(make_app(repo, path="app"))
    assert app.conditions == []  # no "object has no metadata.name"
    assert [r["name"] for r in app.resources] == ["settings"]

    first = sync_and_wait(app)
    assert first.phase == "Succeeded", first.message
    [first_job] = hook_names(first)
    assert first_job.startswith("migrate-") and live(app, "batch/v1", "Job", first_job)

    second = sync_and_wait(Application.objects.get(pk=app.pk))
    assert second.phase == "Succeeded", second.message
    [second_job] = hook_names(second)
    assert second_job.startswith("migrate-") and second_job != first_job
    # BeforeHookCreation, the default: the earlier run made way for this one.
    assert live(app, "batch/v1", "Job", first_job) is None
    assert live(app, "batch/v1", "Job", second_job) is not None
    assert refreshed(app).sync_status == "Synced"


# --- Jsonnet -------------------------------------------------------------------------------------
JSONNET_FILES = {
    "lib/cm.libsonnet": "{ cm(name, data):: { apiVersion: 'v1', kind: 'ConfigMap', "
                        "metadata: { name: name }, data: data } }",
    "guestbook/main.jsonnet": """local k = import 'cm.libsonnet';
function(replicas=1) [
  k.cm('guestbook', { replicas: std.toString(replicas), tier: std.extVar('tier') }),
]""",
}


@pytest.fixture
def jsonnet_repo(repo, git_server):
    repo.push(JSONNET_FILES)
    Repository.objects.get_or_create(url=repo.url, defaults={
        "username": git_server.username, "password": git_server.password})
    Project.objects.get_or_create(name="default")  # a transactional test flushed the migration's
    return repo


def test_jsonnet_app_created_through_the_api_renders_and_syncs(admin_client, jsonnet_repo,
                                                               cluster_record, name):
    body = {"name": name, "project": "default", "repository": jsonnet_repo.url,
            "path": "guestbook", "tool": "jsonnet", "cluster": cluster_record.name,
            "namespace": name, "sync_options": ["CreateNamespace=true"],
            "source": {"jsonnet": {"tlas": [{"name": "replicas", "value": "3", "code": True}],
                                   "extVars": [{"name": "tier", "value": "frontend"}],
                                   "libs": ["lib"]}}}
    response = admin_client.post("/api/applications/", body, content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["tool"] == "jsonnet"
    assert response.json()["source"]["jsonnet"] == {
        "tlas": [{"name": "replicas", "value": "3", "code": True}],
        "ext_vars": [{"name": "tier", "value": "frontend", "code": False}], "libs": ["lib"]}

    app = refreshed(Application.objects.get(name=name))
    assert app.conditions == [] and [r["name"] for r in app.resources] == ["guestbook"]
    op = sync_and_wait(app)
    assert op.phase == "Succeeded", op.message
    assert live(app, "v1", "ConfigMap", "guestbook")["data"] == {"replicas": "3",
                                                                 "tier": "frontend"}


def test_jsonnet_directory_is_detected_without_a_tool(jsonnet_repo, make_app):
    app = refreshed(make_app(jsonnet_repo, path="guestbook", source={"jsonnet": {
        "ext_vars": [{"name": "tier", "value": "web", "code": False}], "libs": ["lib"]}}))
    assert app.conditions == [] and app.sync_status == "OutOfSync"
    assert [(r["kind"], r["name"]) for r in app.resources] == [("ConfigMap", "guestbook")]


@pytest.mark.parametrize("fields, message", [
    ({"tool": "ksonnet"}, "'ksonnet' is not a tool; valid: directory, kustomize, helm, jsonnet"),
    ({"source": {"jsonnet": {"tlas": [{"name": "a-b", "value": "1"}]}}},
     "source.jsonnet.tlas[0].name: is required: a Jsonnet identifier"),
    ({"source": {"jsonnet": {"extVars": [{"name": "x=y", "value": "1"}]}}},
     "source.jsonnet.extVars[0].name: is required, without '='"),
    ({"source": {"jsonnet": {"libs": ["../other"]}}}, "'../other' leads outside the repository"),
    ({"source": {"jsonnet": {"jpath": ["lib"]}}}, "unknown key(s) jpath; valid: tlas, extVars"),
])
def test_invalid_tool_and_jsonnet_settings_answer_400_naming_the_cause(
        admin_client, jsonnet_repo, cluster_record, name, fields, message):
    body = {"name": name, "project": "default", "repository": jsonnet_repo.url,
            "cluster": cluster_record.name, "namespace": name, **fields}
    response = admin_client.post("/api/applications/", body, content_type="application/json")
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert not Application.objects.filter(name=name).exists()


# --- a kind the cluster does not serve -----------------------------------------------------------
WIDGET = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}


def test_resource_of_a_kind_the_cluster_lacks_is_listed_with_its_error(repo, make_app):
    repo.push({"app.yaml": [WIDGET, configmap("settings")]})
    app = refreshed(make_app(repo))
    rows = {r["kind"]: r for r in app.resources}
    assert set(rows) == {"Widget", "ConfigMap"}
    widget = rows["Widget"]
    assert (widget["group"], widget["name"], widget["status"], widget["health"]) == \
        ("example.com", "w", "OutOfSync", "Missing")
    assert "Widget" in widget["error"] and "CustomResourceDefinition" in widget["error"]
    assert [c["message"] for c in app.conditions] == [widget["error"]]
    assert (app.sync_status, app.health_status) == ("OutOfSync", "Missing")


# --- automated sync with prune off ---------------------------------------------------------------
def test_automated_sync_does_not_start_when_only_pruning_is_needed_and_prune_is_off(repo, make_app):
    repo.push({"a.yaml": configmap("a"), "b.yaml": configmap("b")})
    app = refreshed(make_app(repo, automated=True, prune=False))
    assert app.operations.count() == 1 and app.operations.get().phase == "Succeeded"

    repo.push({}, delete=["b.yaml"])
    app = refreshed(app)
    assert app.operations.count() == 1  # Argo CD starts no sync either
    assert app.sync_status == "OutOfSync"
    assert {r["name"]: r["requires_pruning"] for r in app.resources} == {"a": False, "b": True}
    assert live(app, "v1", "ConfigMap", "b") is not None

    # Anything else to apply and the automated sync runs (still without pruning).
    repo.push({"a.yaml": configmap("a", k="changed")})
    app = refreshed(app)
    assert app.operations.count() == 2 and app.operations.first().phase == "Succeeded"
    assert live(app, "v1", "ConfigMap", "a")["data"] == {"k": "changed"}
    assert live(app, "v1", "ConfigMap", "b") is not None


# --- failures in the log -------------------------------------------------------------------------
def warnings_about(caplog, app_name):
    return [r for r in caplog.records
            if r.levelno >= logging.WARNING and app_name in r.getMessage()]


def test_render_and_sync_failures_are_logged_once_in_one_line(repo, make_app, caplog, git_server):
    caplog.set_level(logging.DEBUG, logger="apps")
    repo.push({"app.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n"})
    app = make_app(repo)
    refreshed(app)
    refreshed(app)  # the same failure again: no second warning
    [render_failure] = warnings_about(caplog, app.name)
    message = render_failure.getMessage()
    assert message.startswith(f"refresh of {app.name} failed: RenderError: app.yaml:")
    assert "invalid YAML" in message and "\n" not in message
    assert not render_failure.exc_info

    caplog.clear()
    failing_hook = job("migrate", {"argocd.argoproj.io/hook": "PreSync"},
                       node_selector={"no-such-node": "x"}, deadline=2)
    repo.push({"app.yaml": [failing_hook, configmap("settings")]})
    op = sync_and_wait(refreshed(app))
    assert op.phase == "Failed"
    [sync_failure] = warnings_about(caplog, app.name)
    assert sync_failure.getMessage().startswith(
        f"sync of {app.name} failed (operation {op.pk}, Failed): ")
    assert "migrate" in sync_failure.getMessage() and not sync_failure.exc_info
    assert git_server.password not in caplog.text
